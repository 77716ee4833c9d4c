import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Job } from '../../core/job.js'
import type { JobEvent } from '../../core/job-events.js'
import { build, TENANTS } from '../helper.js'
import { exited, freePort, startAirlock, startRedis, until } from '../processes.js'
import { openStream, strip } from '../ws-client.js'

const auth = { authorization: `Bearer ${TENANTS.alice}` }

t.test(
  'Redis restarted under load: no accepted job is lost, clients get 503 meanwhile, the service recovers',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-aof-'))
    const redis = await startRedis(undefined, dir)
    let current = redis.process
    t.teardown(async () => {
      current.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    })
    const h = await build(t, { listen: true, redisUrl: redis.url })
    const accepted: string[] = []
    const statuses: Record<number, number> = {}
    let slowest = 0
    let submitting = true
    const submitter = (async () => {
      while (submitting) {
        const t0 = Date.now()
        const res = await fetch(`${h.baseUrl}/v1/jobs`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ runtime: 'bash', source: 'echo ok' }),
          signal: AbortSignal.timeout(10_000),
        })
        slowest = Math.max(slowest, Date.now() - t0)
        statuses[res.status] = (statuses[res.status] ?? 0) + 1
        const body = (await res.json()) as { id?: string; code?: string }
        if (res.status === 202 && body.id) accepted.push(body.id)
        if (res.status === 503)
          t.equal(body.code, 'AIRLOCK_ERR_STORE_UNAVAILABLE', 'a 503 says the store is unavailable')
        await new Promise((r) => setTimeout(r, 100))
      }
    })()

    await new Promise((r) => setTimeout(r, 1500))
    // A clean restart, as an operator or a managed Redis does it: the AOF is flushed.
    current.kill('SIGTERM')
    await exited(current)
    await new Promise((r) => setTimeout(r, 2000))
    current = (await startRedis(redis.port, dir)).process
    await new Promise((r) => setTimeout(r, 3000))
    submitting = false
    await submitter

    t.ok((statuses[503] ?? 0) > 0, `submissions while Redis was down got 503 (${JSON.stringify(statuses)})`)
    t.equal(statuses[500] ?? 0, 0, 'never a 500')
    t.ok(slowest < 6000, `no submission hung (slowest ${slowest} ms)`)
    t.ok(accepted.length > 10, `jobs were accepted before and after (${accepted.length})`)
    const jobs = await until(
      async () => Promise.all(accepted.map(async (id) => (await h.request('GET', `/v1/jobs/${id}`)).json<Job>())),
      (all) => all.every((j) => j.status === 'succeeded' || j.status === 'error' || j.status === 'failed'),
      90_000,
      'every accepted job to end',
    )
    const lost = jobs.filter((j) => j.status !== 'succeeded')
    t.same(
      lost.map((j) => `${j.id}:${j.status}:${j.reason}`),
      [],
      'every accepted job ran and succeeded',
    )
    const after = await h.run({ runtime: 'bash', source: 'echo recovered' })
    t.equal(after.stdout, 'recovered\n')
  },
)

t.test('an API process killed while streaming: the client resumes from its last seq on another process', async (t) => {
  const h = await build(t, { listen: true })
  const env = {
    REDIS_URL: h.config.redisUrl,
    AIRLOCK_REDIS_PREFIX: h.config.redisPrefix,
    AIRLOCK_API_KEYS: h.config.apiKeys,
  }
  const port = await freePort()
  const doomed = startAirlock('api', { ...env, PORT: String(port) })
  t.teardown(() => void doomed.kill('SIGKILL'))
  const doomedUrl = `http://127.0.0.1:${port}`
  await until(
    () =>
      fetch(`${doomedUrl}/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    Boolean,
    15_000,
    'the API process to start',
  )

  const { id } = (
    await h.request('POST', '/v1/jobs', {
      runtime: 'python',
      source: 'import time\nfor i in range(12):\n    print(i, flush=True)\n    time.sleep(0.25)',
      limits: { timeoutMs: 30_000 },
    })
  ).json<{ id: string }>()
  let killed = false
  const first = await openStream(doomedUrl, `/v1/jobs/${id}/stream`, auth, (ws) => {
    ws.on('message', (raw) => {
      const e = JSON.parse(raw.toString()) as JobEvent
      if (!killed && e.type === 'log' && e.data.startsWith('3')) {
        killed = true
        doomed.kill('SIGKILL')
      }
    })
  })
  t.ok(killed, 'the API process was killed mid-stream')
  t.not(first.close.code, 1000, `the stream broke (close ${first.close.code})`)
  const lastSeq = first.events[first.events.length - 1]!.seq
  const rest = await openStream(h.baseUrl, `/v1/jobs/${id}/stream?from=${lastSeq}`, auth)
  t.equal(rest.close.code, 1000)
  const all = [...strip(first), ...strip(rest)]
  t.same(
    all.map((e) => e.seq),
    all.map((_, i) => i + 1),
    'no gap, no duplicate',
  )
  t.equal(
    all
      .filter((e) => e.type === 'log')
      .map((e) => (e as { data: string }).data)
      .join(''),
    Array.from({ length: 12 }, (_, i) => `${i}\n`).join(''),
  )
})
