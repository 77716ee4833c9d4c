import type { Job, JobStatus } from '../../../sdk/src/api-types.js'
import { TableHead } from './table-head.js'

export function StatusBadge({ status }: { status: JobStatus | null }) {
  return (
    <span class={`badge status-${status ?? 'none'}`} data-testid="status">
      {status ?? 'not run'}
    </span>
  )
}

const ms = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${v} ms`)

/**
 * What the API says about an ended (or running) job: result, timings, how it was isolated, compile and test results.
 */
export function JobFacts({ job }: { job: Job }) {
  const t = job.timings
  return (
    <div class="facts" data-testid="facts">
      <dl class="grid-dl">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={job.status} />
        </dd>
        <dt>Exit code</dt>
        <dd data-testid="exit-code">{job.exitCode ?? '—'}</dd>
        {job.signal ? (
          <>
            <dt>Signal</dt>
            <dd>{job.signal}</dd>
          </>
        ) : null}
        {job.reason ? (
          <>
            <dt>Reason</dt>
            <dd data-testid="reason">{job.reason}</dd>
          </>
        ) : null}
        <dt>Queued</dt>
        <dd data-testid="timing-queued">{ms(t.queuedMs)}</dd>
        <dt>Start-up</dt>
        <dd data-testid="timing-startup">{ms(t.startupMs)}</dd>
        <dt>Run</dt>
        <dd data-testid="timing-run">{ms(t.runMs)}</dd>
        <dt>Sandbox</dt>
        <dd data-testid="sandbox-start">{job.sandboxStart ?? '—'}</dd>
        <dt>Executor</dt>
        <dd>{job.executor ?? '—'}</dd>
      </dl>
      {job.isolation ? (
        <details class="isolation" open data-testid="isolation">
          <summary>Isolation</summary>
          <dl class="grid-dl">
            <dt>Technology</dt>
            <dd>{`${job.isolation.technology} ${job.isolation.version}`}</dd>
            <dt>Runtime</dt>
            <dd>{job.isolation.runtime}</dd>
            <dt>Platform</dt>
            <dd>{job.isolation.platform}</dd>
            <dt>Network</dt>
            <dd>{job.isolation.network}</dd>
            <dt>Root</dt>
            <dd>{job.isolation.readOnlyRoot ? 'read-only' : 'writable'}</dd>
            <dt>User</dt>
            <dd>{`uid ${job.isolation.uid}`}</dd>
            <dt>Capabilities</dt>
            <dd>{job.isolation.capabilities.length === 0 ? 'none' : job.isolation.capabilities.join(', ')}</dd>
            {job.isolation.seccomp ? (
              <>
                <dt>Seccomp</dt>
                <dd>{job.isolation.seccomp}</dd>
              </>
            ) : null}
          </dl>
        </details>
      ) : null}
      {job.compile ? (
        <details class="compile" open={job.compile.status !== 'succeeded'}>
          <summary>{`Compile: ${job.compile.status} (${ms(job.compile.timeMs)})`}</summary>
          <pre class="output small">
            <span class="out-stdout">{job.compile.stdout}</span>
            <span class="out-stderr">{job.compile.stderr}</span>
          </pre>
        </details>
      ) : null}
      {job.tests.length > 0 ? (
        <table class="table" data-testid="test-results">
          <TableHead columns={['Case', 'Result', 'Exit', 'Time', 'Output']} />
          <tbody>
            {job.tests.map((r, i) => (
              <tr key={i}>
                <td>{i + 1}</td>
                <td>
                  <span class={`badge test-${r.status}`}>{r.status}</span>
                </td>
                <td>{r.exitCode ?? r.signal ?? '—'}</td>
                <td>{ms(r.timeMs)}</td>
                <td>
                  <code class="clip">{r.stdout || r.stderr}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  )
}
