import { useEffect, useState } from 'preact/hooks'
import type { Airlock } from '../../../sdk/src/client.js'
import type { JobList, JobStatus } from '../../../sdk/src/api-types.js'
import { ApiError } from '../components/api-error.js'
import { StatusBadge } from '../components/job-facts.js'
import { toAirlockError } from '../live-job.js'
import { routeHref, STATUSES } from '../route.js'
import { TableHead } from '../components/table-head.js'

export const PAGE_SIZES = [10, 20, 50] as const

/**
 * The tenant's jobs, newest first, filtered by status and paged with the API's cursor (a new status starts a new list:
 * app.tsx keys it).
 */
export function Jobs({ client, status }: { client: Airlock; status: JobStatus | null }) {
  const [pageSize, setPageSize] = useState<number>(20)
  // The cursors of the pages before this one, so "Newer" goes back without a reverse cursor.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined])
  const [page, setPage] = useState<JobList | null>(null)
  const [error, setError] = useState<{ code: string; message: string } | null>(null)
  const cursor = cursors.at(-1)

  useEffect(() => {
    const abort = new AbortController()
    setError(null)
    // No page while the next loads: a second click cannot push the same cursor again.
    setPage(null)
    client.jobs.list({ status: status ? [status] : undefined, limit: pageSize, cursor, signal: abort.signal }).then(
      (loaded) => !abort.signal.aborted && setPage(loaded),
      (err) => !abort.signal.aborted && setError(toAirlockError(err)),
    )
    return () => abort.abort()
  }, [client, status, pageSize, cursor])

  return (
    <section class="panel">
      <div class="row">
        <h2>Jobs</h2>
        <label class="inline">
          Status
          <select
            value={status ?? ''}
            onChange={(e) =>
              (location.hash = routeHref({ page: 'jobs', status: (e.currentTarget.value || null) as JobStatus | null }))
            }
            data-testid="status-filter"
          >
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label class="inline">
          Per page
          <select
            value={String(pageSize)}
            onChange={(e) => {
              setCursors([undefined])
              setPageSize(Number(e.currentTarget.value))
            }}
            data-testid="page-size"
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </div>
      {error ? <ApiError error={error} /> : null}
      <div class="table-wrap">
        <table class="table" data-testid="jobs-table">
          <TableHead columns={['Job', 'Runtime', 'Status', 'Exit', 'Created']} />
          <tbody>
            {page?.items.map((j) => (
              <tr key={j.id} data-job={j.id}>
                <td>
                  <a href={routeHref({ page: 'job', id: j.id })}>
                    <code>{j.id.slice(0, 8)}</code>
                  </a>
                </td>
                <td>{j.runtime}</td>
                <td>
                  <StatusBadge status={j.status} />
                </td>
                <td>{j.exitCode ?? '—'}</td>
                <td>
                  <time dateTime={j.createdAt}>{new Date(j.createdAt).toLocaleString()}</time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page && page.items.length === 0 ? <p class="muted">No jobs{status ? ` with status ${status}` : ''}.</p> : null}
      <div class="row pager">
        <button
          type="button"
          disabled={!page || cursors.length <= 1}
          onClick={() => setCursors(cursors.slice(0, -1))}
          data-testid="newer"
        >
          ← Newer
        </button>
        <span class="muted small" data-testid="page-number">{`Page ${cursors.length}`}</span>
        <button
          type="button"
          disabled={!page?.nextCursor}
          onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}
          data-testid="older"
        >
          Older →
        </button>
      </div>
    </section>
  )
}
