/**
 * Fair-share benchmark (prints numbers; not a test): how long one job of tenant "solo"
 * waits in the queue (1) on an idle service, (2) behind a flood of another tenant's
 * jobs when that tenant has a maxRunning quota, (3) behind the same flood without one.
 * Runs against a running Airlock: AIRLOCK_URL and AIRLOCK_ADMIN_KEY.
 *
 *   npm run bench:fair-share [-- --flood 100 --max-running 1]
 */
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    flood: { type: 'string', default: '100' },
    'max-running': { type: 'string', default: '1' },
    job: { type: 'string', default: 'sleep 0.3' },
  },
})
const URL_ = process.env.AIRLOCK_URL ?? 'http://127.0.0.1:8080'
const ADMIN = process.env.AIRLOCK_ADMIN_KEY
if (!ADMIN) {
  console.error('set AIRLOCK_ADMIN_KEY (and AIRLOCK_URL) of a running Airlock')
  process.exit(64)
}
const FLOOD = Number(values.flood)
const run = randomBytes(3).toString('hex')

async function call<T>(method: string, path: string, key: string, body?: unknown): Promise<T> {
  const res = await fetch(`${URL_}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return (text ? JSON.parse(text) : null) as T
}

async function tenant(name: string, quotas: object): Promise<string> {
  await call('POST', '/v1/admin/tenants', ADMIN!, { name, quotas })
  return (await call<{ key: string }>('POST', `/v1/admin/tenants/${name}/keys`, ADMIN!, {})).key
}

async function soloWaitMs(solo: string): Promise<number> {
  const { id } = await call<{ id: string }>('POST', '/v1/jobs', solo, { runtime: 'bash', source: 'true' })
  for (;;) {
    const job = await call<{ status: string; timings: { queuedMs: number | null } }>('GET', `/v1/jobs/${id}`, solo)
    if (job.timings.queuedMs !== null) return job.timings.queuedMs
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function withFlood(flooder: string, solo: string): Promise<number> {
  const ids: string[] = []
  for (let i = 0; i < FLOOD; i++)
    ids.push((await call<{ id: string }>('POST', '/v1/jobs', flooder, { runtime: 'bash', source: values.job })).id)
  await new Promise((r) => setTimeout(r, 1000))
  const wait = await soloWaitMs(solo)
  for (const id of ids) await call('DELETE', `/v1/jobs/${id}`, flooder).catch(() => undefined)
  await new Promise((r) => setTimeout(r, 2000))
  return wait
}

const solo = await tenant(`fs-solo-${run}`, {})
const gated = await tenant(`fs-flood-${run}`, { maxRunning: Number(values['max-running']) })
const ungated = await tenant(`fs-nocap-${run}`, {})
const idle = await soloWaitMs(solo)
console.error(`idle: ${idle} ms`)
const withGate = await withFlood(gated, solo)
console.error(`with the gate: ${withGate} ms`)
const withoutGate = await withFlood(ungated, solo)
console.log(
  `solo's queue wait: idle ${idle} ms; behind ${FLOOD} flood jobs with maxRunning ${values['max-running']}: ${withGate} ms; without a quota: ${withoutGate} ms`,
)
