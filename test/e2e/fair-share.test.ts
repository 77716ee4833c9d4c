import t from 'tap'
import type { Job } from '../../core/job.js'
import { build } from '../helper.js'

const ADMIN = 'admin-key-fair-share-01'
const FLOOD = 200

// Real gVisor runs on a worker that runs 2 jobs at once: tenant "flood" (maxRunning 1)
// queues 200 jobs, then tenant "solo" submits one.
const h = await build(t, { env: { AIRLOCK_ADMIN_KEY: ADMIN, AIRLOCK_WORKER_CONCURRENCY: '2' } })
const call = (method: 'GET' | 'POST' | 'DELETE', url: string, key: string, body?: unknown) =>
  h.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  })

async function tenant(name: string, quotas: object): Promise<string> {
  await call('POST', '/v1/admin/tenants', ADMIN, { name, quotas })
  return (await call('POST', `/v1/admin/tenants/${name}/keys`, ADMIN, {})).json<{ key: string }>().key
}

t.test("with one tenant's 200 jobs queued, another tenant's job starts within a few of them", async (t) => {
  const flood = await tenant('flood', { maxRunning: 1 })
  const solo = await tenant('solo', {})
  const floodIds: string[] = []
  for (let i = 0; i < FLOOD; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: 20 }, () => call('POST', '/v1/jobs', flood, { runtime: 'bash', source: 'sleep 0.3' })),
    )
    floodIds.push(...batch.map((r) => r.json<{ id: string }>().id))
  }
  t.equal(floodIds.length, FLOOD)
  // Watch that the flood never runs more than its quota at once.
  let maxFloodRunning = 0
  let watching = true
  const watcher = (async () => {
    while (watching) {
      const running = (await call('GET', '/v1/jobs?status=running&limit=100', flood)).json<{ items: unknown[] }>().items
        .length
      maxFloodRunning = Math.max(maxFloodRunning, running)
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  await h.poll(floodIds[0]!, (j: Job) => j.status !== 'queued', 60_000).catch(() => undefined)

  const submitted = Date.now()
  const { id } = (await call('POST', '/v1/jobs', solo, { runtime: 'bash', source: 'echo solo' })).json<{ id: string }>()
  let job: Job
  for (;;) {
    job = (await call('GET', `/v1/jobs/${id}`, solo)).json<Job>()
    if (job.status !== 'queued' && job.status !== 'running') break
    await new Promise((r) => setTimeout(r, 50))
  }
  const floodDone = (await call('GET', '/v1/jobs?status=succeeded&limit=100', flood)).json<{ items: unknown[] }>().items
    .length
  t.comment(
    `solo waited ${job.timings.queuedMs} ms in the queue (${Date.now() - submitted} ms to its result) while ${floodDone} of flood's ${FLOOD} jobs had finished`,
  )
  t.equal(job.status, 'succeeded')
  t.equal(job.stdout, 'solo\n')
  // Without the gate it would wait behind 200 jobs of ~0.5 s each on 2 slots: ~50 s.
  t.ok(job.timings.queuedMs! < 10_000, `solo started within a few of flood's jobs (${job.timings.queuedMs} ms)`)
  t.ok(floodDone < 40, `most of the flood was still queued (${floodDone} done)`)
  watching = false
  await watcher
  t.equal(maxFloodRunning, 1, 'flood never ran more than its maxRunning quota of 1')

  // Leave nothing running behind.
  for (const fid of floodIds) await call('DELETE', `/v1/jobs/${fid}`, flood)
  for (const fid of floodIds.slice(0, 5))
    await h.poll(fid, (j: Job) => j.status !== 'queued' && j.status !== 'running', 30_000).catch(() => undefined)
})
