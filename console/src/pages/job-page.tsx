import { useEffect, useState } from 'preact/hooks'
import type { Airlock } from '../../../sdk/src/client.js'
import type { Job, JobRequest } from '../../../sdk/src/api-types.js'
import { ConflictError } from '../../../sdk/src/errors.js'
import { isFinished } from '../../../sdk/src/jobs.js'
import { ApiError } from '../components/api-error.js'
import { CodeEditor } from '../components/code-editor.js'
import { JobFacts, StatusBadge } from '../components/job-facts.js'
import { OutputView } from '../components/output-view.js'
import { toAirlockError, useLiveJob } from '../live-job.js'

/**
 * One job: its source as submitted, its output (live while it runs), timings and isolation. Its URL can be shared
 * within the tenant.
 */
export function JobPage({ client, id }: { client: Airlock; id: string }) {
  const [job, setJob] = useState<Job | null>(null)
  const [request, setRequest] = useState<JobRequest | null>(null)
  const [file, setFile] = useState(0)
  const [error, setError] = useState<{ code: string; message: string } | null>(null)
  const live = useLiveJob(client, id)

  useEffect(() => {
    const abort = new AbortController()
    setError(null)
    Promise.all([
      client.jobs.get(id, { signal: abort.signal }),
      client.jobs.request(id, { signal: abort.signal }),
    ]).then(
      ([j, r]) => {
        if (abort.signal.aborted) return
        setJob(j)
        setRequest(r)
      },
      (err) => !abort.signal.aborted && setError(toAirlockError(err)),
    )
    return () => abort.abort()
  }, [client, id])

  const shown = live.job ?? job
  const status = live.status ?? shown?.status ?? null
  const files = request?.files ?? []
  return (
    <div class="playground">
      <section class="panel" aria-label="Source">
        <div class="row">
          <h2>
            Job <code data-testid="job-id">{id}</code>
          </h2>
          <StatusBadge status={status} />
          {status && !isFinished({ status }) ? (
            <button
              type="button"
              class="danger"
              onClick={() =>
                client.jobs.cancel(id).catch((err) => !(err instanceof ConflictError) && setError(toAirlockError(err)))
              }
              data-testid="cancel"
            >
              Cancel
            </button>
          ) : null}
        </div>
        {error ? <ApiError error={error} /> : null}
        {request ? (
          <>
            <p class="muted small">{`${request.runtime} · entrypoint ${request.entrypoint ?? files[0]?.path ?? '—'}${request.args?.length ? ` · args ${request.args.join(' ')}` : ''}`}</p>
            <div class="tabs" role="tablist">
              {files.map((f, i) => (
                <span key={f.path} class={`tab ${i === file ? 'active' : ''}`}>
                  <button type="button" role="tab" aria-selected={i === file} onClick={() => setFile(i)}>
                    {f.path}
                  </button>
                </span>
              ))}
            </div>
            {files[file] ? (
              files[file].encoding === 'base64' ? (
                <p class="muted">{`${files[file].path}: binary (${Math.floor((files[file].content.length * 3) / 4)} bytes)`}</p>
              ) : (
                <CodeEditor
                  key={`${id}-${file}`}
                  value={files[file].content}
                  runtime={request.runtime}
                  path={files[file].path}
                  label={`Source of ${files[file].path}`}
                  onChange={() => undefined}
                  readOnly
                />
              )
            ) : null}
            {request.stdin ? (
              <details class="more">
                <summary>stdin</summary>
                <pre class="output small">{request.stdin}</pre>
              </details>
            ) : null}
            {request.limits ? (
              <p class="muted small" data-testid="job-limits">
                {Object.entries(request.limits)
                  .map(([k, v]) => `${k} ${v}`)
                  .join(' · ')}
              </p>
            ) : null}
          </>
        ) : null}
      </section>
      <section class="panel result-panel" aria-label="Output">
        <OutputView
          pieces={live.pieces}
          placeholder={status && isFinished({ status }) ? 'No output.' : 'Waiting for output…'}
        />
        {live.error ? <ApiError error={live.error} /> : null}
        {shown ? <JobFacts job={shown} /> : null}
      </section>
    </div>
  )
}
