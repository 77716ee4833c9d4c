import { execFileSync } from 'node:child_process'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import type { Job } from '../../core/job.js'
import { JobStore } from '../../core/job-store.js'
import { redisKeys } from '../../core/redis-keys.js'
import { WorkerRegistry } from '../../core/worker-registry.js'
import { Redis } from 'ioredis'
import { build, sandboxCgroupsLeft, TENANTS } from '../helper.js'
import { exited, startAirlock, until, workerEnv } from '../processes.js'

// kill -9 a worker at random moments of its jobs' lives, again and again. Longer runs:
// AIRLOCK_CRASH_ROUNDS=50 npx tap test/e2e/worker-crash.test.ts
const ROUNDS = Number(process.env.AIRLOCK_CRASH_ROUNDS ?? 6)
const JOBS_PER_ROUND = 3

t.test(`a worker killed -9 ${ROUNDS} times loses no job and runs none twice`, async (t) => {
  const h = await build(t, { worker: false })
  const env = { ...workerEnv(h.config, 'crash'), AIRLOCK_JOB_LOCK_MS: '2000' }
  const { AIRLOCK_STATE_DIR: stateDir, AIRLOCK_CGROUP_PARENT: cgroupParent } = env
  const redis = new Redis(h.config.redisUrl)
  t.teardown(() => redis.disconnect())
  const store = new JobStore(redis, redisKeys(h.config.redisPrefix), 3600)

  const accepted: string[] = []
  const kills: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const worker = startAirlock('worker', env)
    for (let i = 0; i < JOBS_PER_ROUND; i++) {
      const sleep = (Math.random() * 1.5).toFixed(2)
      const res = await h.request('POST', '/v1/jobs', {
        runtime: 'python',
        source: `import time\nprint("RUN-START", flush=True)\ntime.sleep(${sleep})\nprint("RUN-END", flush=True)`,
        limits: { timeoutMs: 30_000 },
      })
      t.equal(res.statusCode, 202)
      accepted.push(res.json<{ id: string }>().id)
    }
    // Anywhere from before the worker is up to after some jobs are done.
    const after = Math.round(200 + Math.random() * 2800)
    kills.push(after)
    await new Promise((r) => setTimeout(r, after))
    worker.kill('SIGKILL')
    await exited(worker)
  }

  const last = startAirlock('worker', env)
  const jobs = await until(
    async () => Promise.all(accepted.map(async (id) => (await h.request('GET', `/v1/jobs/${id}`)).json<Job>())),
    (all) => all.every((j) => j.status !== 'queued' && j.status !== 'running'),
    120_000,
    'every accepted job to end',
  )
  last.kill('SIGTERM')
  t.equal(await exited(last), 0, 'the last worker stops cleanly')

  const byStatus: Record<string, number> = {}
  for (const job of jobs) {
    byStatus[job.status] = (byStatus[job.status] ?? 0) + 1
    const nd = await h.app.inject({
      method: 'GET',
      url: `/v1/jobs/${job.id}/logs`,
      headers: { authorization: `Bearer ${TENANTS.alice}`, accept: 'application/x-ndjson' },
    })
    const events = nd.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; status?: string; data?: string })
    const finals = events.filter((e) => e.type === 'status' && !['queued', 'running'].includes(e.status ?? ''))
    t.equal(finals.length, 1, `${job.id}: exactly one final status (${job.status})`)
    t.equal(events.filter((e) => e.type === 'end').length, 1, `${job.id}: exactly one end`)
    const log = events.map((e) => e.data ?? '').join('')
    t.ok(log.split('RUN-START').length - 1 <= 1, `${job.id}: its program started at most once`)
    t.ok(log.split('RUN-END').length - 1 <= 1, `${job.id}: and ran to completion at most once`)
    const stored = await store.get(job.id)
    t.ok((stored?.launches ?? 0) <= 1, `${job.id}: at most one sandbox launched (${stored?.launches})`)
    if (job.status === 'succeeded') t.equal(job.stdout, 'RUN-START\nRUN-END\n')
    else t.equal(job.status, 'error', `${job.id}: a job its worker died under ends as error, never silently`)
  }
  t.ok(
    (byStatus.succeeded ?? 0) > 0,
    `some jobs succeeded (${JSON.stringify(byStatus)}; kills after ${kills.join(', ')} ms)`,
  )

  // Nothing of any sandbox is left: state, cgroups or processes.
  const owners = await readdir(join(stateDir, 'workers')).catch(() => [] as string[])
  t.same(owners, [], 'no worker state is left')
  t.same(await sandboxCgroupsLeft(cgroupParent), [], 'no sandbox cgroup is left')
  let procs = ''
  try {
    procs = execFileSync('pgrep', ['-f', stateDir], { encoding: 'utf8' })
  } catch {
    procs = '' // pgrep exits 1 when nothing matches
  }
  t.equal(procs.trim(), '', 'no sandbox process is left')
})

t.test(
  'a worker that dies has its sandboxes removed by a live worker on the host, not by the next to start',
  async (t) => {
    // Found by review 16: orphans were removed only when a worker started, so a killed
    // worker's sandbox ran on past its job's time limit, and its job's end, for as long as
    // no worker started.
    const h = await build(t, { worker: false })
    const env = workerEnv(h.config, 'orphans')
    const redis = new Redis(h.config.redisUrl)
    t.teardown(() => redis.disconnect())
    const registry = new WorkerRegistry(redis, redisKeys(h.config.redisPrefix))
    const dying = startAirlock('worker', env)
    t.teardown(() => void dying.kill('SIGKILL'))
    const { id } = (
      await h.request('POST', '/v1/jobs', {
        runtime: 'bash',
        source: 'echo RUN-START; sleep 600',
        limits: { timeoutMs: 120_000 },
      })
    ).json<{ id: string }>()
    await h.poll(id, (j: Job) => j.status === 'running' && j.startedAt !== null, 30_000)
    const live = startAirlock('worker', env)
    t.teardown(async () => {
      live.kill('SIGTERM')
      await exited(live)
    })
    // Up and beating: its start-up removal of orphans is behind it.
    await until(
      () => registry.live(),
      (workers) => workers.length === 2,
      30_000,
      'the second worker to beat',
    )
    dying.kill('SIGKILL')
    await exited(dying)
    const sandbox = () => {
      try {
        return execFileSync('pgrep', ['-f', `airlock-${id}`], { encoding: 'utf8' }).trim()
      } catch {
        return '' // pgrep exits 1 when nothing matches
      }
    }
    t.not(sandbox(), '', "the dead worker's sandbox runs on at first")
    await until(
      async () => sandbox(),
      (left) => left === '',
      40_000,
      'the live worker to remove the sandbox',
    )
    const job = await h.poll(id, (j: Job) => j.status !== 'running', 40_000)
    t.match(job, { status: 'error', reason: /not run again/ }, 'and its job ends, not run again')
  },
)
