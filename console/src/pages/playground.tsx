import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { Airlock } from '../../../sdk/src/client.js'
import type { Runtime } from '../../../sdk/src/api-types.js'
import { draftRequest, freshDraft, LIMIT_FIELDS, type Draft, type DraftFile } from '../draft.js'
import { ConflictError } from '../../../sdk/src/errors.js'
import { isFinished } from '../../../sdk/src/jobs.js'
import { CodeEditor } from '../components/code-editor.js'
import { FieldError } from '../components/field-error.js'
import { JobFacts, StatusBadge } from '../components/job-facts.js'
import { OutputView } from '../components/output-view.js'
import { fieldErrors, type FieldErrors } from '../field-errors.js'
import { toAirlockError, useLiveJob } from '../live-job.js'
import { routeHref } from '../route.js'
import { sampleFor } from '../samples.js'
import { ApiError } from '../components/api-error.js'

// The draft outlives a visit to another page of the console (not a reload: nothing is stored).
let kept: Draft | null = null

/** Signing out forgets the draft: the next person in this tab starts with a clean form. */
export function forgetDraft(): void {
  kept = null
}

export function Playground({ client }: { client: Airlock }) {
  const [runtimes, setRuntimes] = useState<Runtime[] | null>(null)
  const [draft, setDraftState] = useState<Draft | null>(kept)
  const [jobId, setJobId] = useState<string | null>(null)
  const [errors, setErrors] = useState<FieldErrors>(new Map())
  const [apiError, setApiError] = useState<{ code: string; message: string } | null>(null)
  const [submitting, setSubmitting] = useState(false)
  const live = useLiveJob(client, jobId)
  // A job whose stream and result both failed to load is not shown as running for good.
  const running = jobId !== null && !live.error && !(live.status && isFinished({ status: live.status }))

  const setDraft = (next: Draft) => {
    kept = next
    setDraftState(next)
  }

  useEffect(() => {
    client.runtimes().then(
      (list) => {
        setRuntimes(list)
        if (!kept && list[0]) setDraft(freshDraft(list.find((r) => r.name === 'python') ?? list[0]))
      },
      (err) => setApiError(toAirlockError(err)),
    )
  }, [client])

  const runtime = useMemo(() => runtimes?.find((r) => r.name === draft?.runtime), [runtimes, draft?.runtime])

  // Ctrl/Cmd+Enter runs from anywhere on the page (the editor handles its own).
  const runRef = useRef<() => void>(() => undefined)
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key === 'Enter' && !e.defaultPrevented) {
        e.preventDefault()
        runRef.current()
      }
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])

  // Two Ctrl+Enter presses can come before a render: the ref, not the state, says whether one is on its way.
  const inFlight = useRef(false)
  const run = async () => {
    if (!draft || inFlight.current || running) return
    inFlight.current = true
    setApiError(null)
    const made = draftRequest(draft)
    if ('errors' in made) return setErrors(made.errors)
    setErrors(new Map())
    setSubmitting(true)
    try {
      const accepted = await client.jobs.create(made.request)
      setJobId(accepted.id)
    } catch (err) {
      const e = toAirlockError(err)
      setApiError({ code: e.code, message: e.message })
      setErrors(fieldErrors(e.message, e.details))
    } finally {
      inFlight.current = false
      setSubmitting(false)
    }
  }
  runRef.current = run

  const cancel = async () => {
    if (!jobId) return
    try {
      await client.jobs.cancel(jobId)
    } catch (err) {
      if (!(err instanceof ConflictError)) setApiError(toAirlockError(err))
    }
  }

  if (!draft || !runtimes) {
    return (
      <section class="panel">
        {apiError ? <ApiError error={apiError} /> : <p class="muted">Loading runtimes…</p>}
      </section>
    )
  }

  const file = draft.files[draft.active] ?? draft.files[0]!
  // Changes build on the newest draft (`kept`), not this render's: two keystrokes can come before a render.
  const update = (patch: Partial<Draft>) => setDraft({ ...kept!, ...patch })
  const updateFile = (i: number, patch: Partial<DraftFile>) =>
    update({ files: kept!.files.map((f, j) => (j === i ? { ...f, ...patch } : f)) })

  const pickRuntime = (name: string) => {
    const next = runtimes.find((r) => r.name === name)
    if (!next) return
    const entry = draft.files[0]!
    // An untouched sample gives way to the new runtime's; the user's own code is kept.
    const untouched = entry.content === sampleFor(draft.runtime) || entry.content.trim() === ''
    const files = [
      { path: next.defaultEntrypoint, content: untouched ? sampleFor(next.name) : entry.content },
      ...draft.files.slice(1),
    ]
    update({ runtime: name, files, limits: next.compiled ? draft.limits : { ...draft.limits, compileTimeoutMs: '' } })
  }

  return (
    <div class="playground">
      <section class="panel editor-panel" aria-label="Program">
        <div class="row">
          <label class="inline">
            Runtime
            <select value={draft.runtime} onChange={(e) => pickRuntime(e.currentTarget.value)} data-testid="runtime">
              {runtimes.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.version ? `${r.name} (${r.version})` : `${r.name} (no worker reports it)`}
                </option>
              ))}
            </select>
          </label>
          <span class="muted small">{runtime?.description}</span>
        </div>
        <FieldError errors={errors} field="runtime" />
        <div class="tabs" role="tablist">
          {draft.files.map((f, i) => (
            <span key={i} class={`tab ${i === draft.active ? 'active' : ''}`}>
              <button
                type="button"
                role="tab"
                aria-selected={i === draft.active}
                onClick={() => update({ active: i })}
                data-testid={`file-tab-${i}`}
              >
                {f.path || '(unnamed)'}
                {i === 0 ? ' ★' : ''}
              </button>
              {i > 0 ? (
                <button
                  type="button"
                  class="icon"
                  aria-label={`Remove ${f.path}`}
                  onClick={() => update({ files: kept!.files.filter((_, j) => j !== i), active: 0 })}
                >
                  ×
                </button>
              ) : null}
            </span>
          ))}
          <button
            type="button"
            class="icon"
            aria-label="Add a file"
            data-testid="add-file"
            onClick={() =>
              update({
                files: [...kept!.files, { path: `file${kept!.files.length}.txt`, content: '' }],
                active: kept!.files.length,
              })
            }
          >
            +
          </button>
        </div>
        <label class="inline small">
          File name
          <input
            value={file.path}
            onInput={(e) => updateFile(draft.active, { path: e.currentTarget.value })}
            data-testid="file-path"
          />
        </label>
        <FieldError errors={errors} field={`files.${draft.active}`} />
        <FieldError errors={errors} field="files" />
        <CodeEditor
          key={`${draft.active}-${draft.runtime}`}
          value={file.content}
          runtime={draft.runtime}
          path={file.path}
          label={`Contents of ${file.path}`}
          onChange={(content) => updateFile(draft.active, { content })}
          onRun={() => runRef.current()}
        />
        <details class="more" open>
          <summary>Input</summary>
          <label>
            stdin
            <textarea
              rows={3}
              value={draft.stdin}
              onInput={(e) => update({ stdin: e.currentTarget.value })}
              data-testid="stdin"
            />
          </label>
          <FieldError errors={errors} field="stdin" />
          <div class="two">
            <label>
              Arguments (one per line)
              <textarea
                rows={2}
                value={draft.args}
                onInput={(e) => update({ args: e.currentTarget.value })}
                data-testid="args"
              />
              <FieldError errors={errors} field="args" />
            </label>
            <label>
              Environment (KEY=value per line)
              <textarea
                rows={2}
                value={draft.env}
                onInput={(e) => update({ env: e.currentTarget.value })}
                data-testid="env"
              />
              <FieldError errors={errors} field="env" />
            </label>
          </div>
        </details>
        <details class="more" open>
          <summary>Limits</summary>
          <div class="limits">
            {LIMIT_FIELDS.filter((l) => !l.compiledOnly || runtime?.compiled).map((l) => (
              <label key={l.key}>
                {l.label}
                <input
                  inputMode="decimal"
                  placeholder="default"
                  value={draft.limits[l.key] ?? ''}
                  onInput={(e) => update({ limits: { ...kept!.limits, [l.key]: e.currentTarget.value } })}
                  data-testid={`limit-${l.key}`}
                  aria-invalid={errors.has(`limits.${l.key}`)}
                />
                <FieldError errors={errors} field={`limits.${l.key}`} />
              </label>
            ))}
          </div>
          <FieldError errors={errors} field="limits" />
        </details>
        <details class="more" open={draft.tests.length > 0}>
          <summary>{`Test cases (${draft.tests.length})`}</summary>
          <p class="muted small">
            Each case runs the program once with its stdin{runtime?.compiled ? ', after one compile' : ''}; stdout is
            compared with the expected output, ignoring trailing whitespace.
          </p>
          {draft.tests.map((t, i) => (
            <div class="test-case" key={i}>
              <label>
                {`Case ${i + 1} stdin`}
                <textarea
                  rows={2}
                  value={t.stdin}
                  onInput={(e) =>
                    update({ tests: kept!.tests.map((x, j) => (j === i ? { ...x, stdin: e.currentTarget.value } : x)) })
                  }
                />
              </label>
              <label>
                Expected output
                <textarea
                  rows={2}
                  value={t.expectedOutput}
                  onInput={(e) =>
                    update({
                      tests: kept!.tests.map((x, j) => (j === i ? { ...x, expectedOutput: e.currentTarget.value } : x)),
                    })
                  }
                />
              </label>
              <button
                type="button"
                class="icon"
                aria-label={`Remove case ${i + 1}`}
                onClick={() => update({ tests: kept!.tests.filter((_, j) => j !== i) })}
              >
                ×
              </button>
              <FieldError errors={errors} field={`tests.${i}`} />
            </div>
          ))}
          <button
            type="button"
            onClick={() => update({ tests: [...kept!.tests, { stdin: '', expectedOutput: '' }] })}
            data-testid="add-test"
          >
            Add a case
          </button>
          <FieldError errors={errors} field="tests" />
        </details>
      </section>
      <section class="panel result-panel" aria-label="Result">
        <div class="row">
          <button
            type="button"
            class="primary"
            onClick={run}
            disabled={submitting || running}
            data-testid="run"
            title="Ctrl+Enter"
          >
            {submitting ? 'Submitting…' : 'Run'} <kbd>Ctrl+Enter</kbd>
          </button>
          {running ? (
            <button type="button" class="danger" onClick={cancel} data-testid="cancel">
              Cancel
            </button>
          ) : null}
          <StatusBadge status={live.status} />
          {jobId ? (
            <a href={routeHref({ page: 'job', id: jobId })} class="small" data-testid="job-link">
              {jobId}
            </a>
          ) : null}
        </div>
        {apiError ? <ApiError error={apiError} /> : null}
        <FieldError errors={errors} field="" />
        <OutputView pieces={live.pieces} placeholder="Output appears here as the program writes it." />
        {live.error ? <ApiError error={live.error} /> : null}
        {live.job ? <JobFacts job={live.job} /> : null}
      </section>
    </div>
  )
}
