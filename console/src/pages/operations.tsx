import { useEffect, useRef, useState } from 'preact/hooks'
import type { AuditEntry, QueueState, UsageReport } from '../../../sdk/src/admin-types.js'
import { AuthenticationError } from '../../../sdk/src/errors.js'
import type { AdminClient } from '../api.js'
import { ApiError } from '../components/api-error.js'
import { formatNumber, Sparkline } from '../components/sparkline.js'
import { toAirlockError } from '../live-job.js'
import { CHARTS, SeriesBook } from '../metric-series.js'
import { TableHead } from '../components/table-head.js'

/** How often the view reads the queue, usage and metrics; the audit trail is read every few of these. */
export const REFRESH_MS = 2000
const AUDIT_EVERY = 3
const AUDIT_PER_TENANT = 10
const AUDIT_SHOWN = 30

type TenantAudit = AuditEntry & { tenant: string }

const bytes = (n: number) =>
  n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`
const limit = (used: number, max: number | undefined, show: (n: number) => string = String) =>
  max ? `${show(used)} / ${show(max)}` : `${show(used)} (no limit)`
const age = (ms: number | null) => (ms === null ? '—' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`)

/** The operator's view: queue, workers and whether they can isolate, tenants' usage, audit, and charts of /metrics. */
export function Operations({ admin, onUnauthorized }: { admin: AdminClient; onUnauthorized(): void }) {
  const [queue, setQueue] = useState<QueueState | null>(null)
  const [usage, setUsage] = useState<UsageReport | null>(null)
  const [audit, setAudit] = useState<TenantAudit[]>([])
  const [error, setError] = useState<{ code: string; message: string } | null>(null)
  const book = useRef(new SeriesBook())
  const [, setTick] = useState(0)

  useEffect(() => {
    const abort = new AbortController()
    let round = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    const refresh = async () => {
      try {
        const [q, u, m] = await Promise.all([
          admin.queue(abort.signal),
          admin.usage(abort.signal),
          admin.metrics(abort.signal),
        ])
        setQueue(q)
        setUsage(u)
        book.current.add(m)
        if (round % AUDIT_EVERY === 0) {
          const made = u.tenants.filter((t) => t.source === 'admin')
          // A tenant deleted since the usage report was read has no trail: leave it out, keep the rest.
          const lists = await Promise.allSettled(
            made.map(async (t) =>
              (await admin.audit(t.name, AUDIT_PER_TENANT, abort.signal)).entries.map((e) => ({
                ...e,
                tenant: t.name,
              })),
            ),
          )
          setAudit(
            lists
              .flatMap((l) => (l.status === 'fulfilled' ? l.value : []))
              .sort((a, b) => b.at.localeCompare(a.at))
              .slice(0, AUDIT_SHOWN),
          )
        }
        setError(null)
      } catch (err) {
        if (abort.signal.aborted) return
        if (err instanceof AuthenticationError) return onUnauthorized()
        setError(toAirlockError(err))
      }
      round++
      setTick(round)
      if (!abort.signal.aborted) timer = setTimeout(refresh, REFRESH_MS)
    }
    void refresh()
    return () => {
      abort.abort()
      clearTimeout(timer)
    }
  }, [admin])

  const unable = queue?.workers.filter((w) => !w.isolation.ok) ?? []
  return (
    <div class="operations">
      {error ? <ApiError error={error} /> : null}
      {unable.length > 0 ? (
        <div class="error-banner" role="alert" data-testid="isolation-warning">
          {`${unable.length} worker(s) cannot isolate jobs and take none: ${unable.map((w) => w.isolation.reason ?? 'no reason given').join('; ')}`}
        </div>
      ) : null}
      <section class="panel">
        <h2>Queue</h2>
        {queue ? (
          <dl class="stats" data-testid="queue">
            {Object.entries(queue.counts).map(([state, n]) => (
              <div key={state}>
                <dt>{state}</dt>
                <dd data-queue-state={state}>{n}</dd>
              </div>
            ))}
            <div>
              <dt>oldest queued</dt>
              <dd data-testid="oldest">{age(queue.oldestQueuedAgeMs)}</dd>
            </div>
          </dl>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </section>
      <section class="panel">
        <h2>Charts (last 10 minutes, this API process)</h2>
        <div class="charts">
          {CHARTS.map((c) => (
            <Sparkline key={c.key} label={c.label} unit={c.unit} points={book.current.series(c.key)} />
          ))}
        </div>
      </section>
      <section class="panel">
        <h2>Workers</h2>
        <div class="table-wrap">
          <table class="table" data-testid="workers">
            <TableHead columns={['Worker', 'Executor', 'Isolation', 'Runtimes', 'Last seen']} />
            <tbody>
              {queue?.workers.map((w) => (
                <tr key={w.id} data-worker={w.id} class={w.isolation.ok ? '' : 'cannot-isolate'}>
                  <td>
                    <code>{w.id}</code>
                  </td>
                  <td>{w.executor}</td>
                  <td data-testid="worker-isolation">
                    {w.isolation.ok ? (
                      <span class="badge ok">{`isolating: ${w.isolation.technology}`}</span>
                    ) : (
                      <>
                        <span class="badge bad">cannot isolate</span>{' '}
                        <span class="reason">{w.isolation.reason ?? 'no reason given'}</span>
                      </>
                    )}
                    <div class="muted small">{w.isolation.detail}</div>
                  </td>
                  <td class="small">
                    {Object.entries(w.runtimes)
                      .map(([name, version]) => `${name} ${version}`)
                      .join(', ') || '—'}
                  </td>
                  <td>{age(w.lastSeenMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {queue && queue.workers.length === 0 ? <p class="muted">No live worker: jobs wait in the queue.</p> : null}
      </section>
      <section class="panel">
        <h2>Tenants</h2>
        <div class="table-wrap">
          <table class="table" data-testid="tenants">
            <TableHead columns={['Tenant', 'Queued', 'Running', 'Stored', 'Per job']} />
            <tbody>
              {usage?.tenants.map((t) => (
                <tr key={t.name} data-tenant={t.name}>
                  <td>
                    {t.name} <span class="muted small">{t.source === 'static' ? '(static key)' : ''}</span>
                  </td>
                  <td>{limit(t.usage.queued, t.quotas.maxQueued ?? (usage.defaults.maxQueued || undefined))}</td>
                  <td>{limit(t.usage.running, t.quotas.maxRunning ?? (usage.defaults.maxRunning || undefined))}</td>
                  <td>
                    {limit(
                      t.usage.storedBytes,
                      t.quotas.maxStoredBytes ?? (usage.defaults.maxStoredBytes || undefined),
                      bytes,
                    )}
                  </td>
                  <td class="small">
                    {[
                      t.quotas.submitsPerSecond ? `${t.quotas.submitsPerSecond}/s` : '',
                      t.quotas.maxTimeoutMs ? `≤${t.quotas.maxTimeoutMs} ms` : '',
                      t.quotas.maxMemoryMb ? `≤${t.quotas.maxMemoryMb} MB` : '',
                      t.quotas.maxCpus ? `≤${formatNumber(t.quotas.maxCpus)} cpus` : '',
                    ]
                      .filter(Boolean)
                      .join(' · ') || 'server limits'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section class="panel">
        <h2>Recent audit entries</h2>
        {audit.length === 0 ? (
          <p class="muted">None yet (tenants made through the admin API keep an audit trail).</p>
        ) : null}
        <ul class="audit" data-testid="audit">
          {audit.map((e, i) => (
            <li key={i}>
              <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time> <strong>{e.tenant}</strong>{' '}
              <code>{e.action}</code> <span class="muted">{`${e.actor} ${e.detail}`}</span>
            </li>
          ))}
        </ul>
      </section>
    </div>
  )
}
