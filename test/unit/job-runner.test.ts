import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { loadConfig } from '../../core/config.js'
import type { Isolation, JobOutcome } from '../../core/job.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { JobStore, newJobId } from '../../core/job-store.js'
import { createLogger } from '../../core/logger.js'
import { Metrics } from '../../core/metrics.js'
import { redisKeys } from '../../core/redis-keys.js'
import type { ExecutionRequest, Executor } from '../../worker/executors/executor.js'
import { JobRunner } from '../../worker/job-runner.js'
import { redisUrl } from '../helper.js'

const isolation: Isolation = {
  technology: 'gvisor',
  runtime: 'runsc',
  version: 'stand-in',
  platform: 'kubernetes',
  network: 'none',
  readOnlyRoot: true,
  uid: 65534,
  capabilities: [],
}

t.test('a job taken over once though its second delivery and the sweep come for it at once', async (t) => {
  // Found by a review of what the worker holds: `run` (BullMQ delivered a running job again)
  // and `adoptOrLose` (the sweep found its worker gone) each checked that the job was not
  // held here before their first wait, both took it over and both followed its sandbox.
  const redis = new Redis(redisUrl())
  const keys = redisKeys(`test-runner-${randomBytes(4).toString('hex')}`)
  t.teardown(async () => {
    const left = await redis.keys(`${keys.prefix}*`)
    if (left.length > 0) await redis.del(...left)
    redis.disconnect()
  })
  const store = new JobStore(redis, keys, 3600)
  const id = newJobId()
  await store.create(id, 'alice', resolveJobSpec({ runtime: 'bash', source: 'true' }, loadConfig({})))
  t.equal(await store.claim(id, 'gone-worker'), 'claimed', 'the job runs on a worker that then stopped')

  // Only the Kubernetes executor adopts (its Jobs outlive a worker), and this machine's
  // cluster is for test/kube: a stand-in counts the adoptions; the race is the runner's.
  let release!: () => void
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const adopted: string[] = []
  const outcome: JobOutcome = {
    status: 'succeeded',
    exitCode: 0,
    signal: null,
    reason: null,
    stdout: 'followed\n',
    stderr: '',
    truncated: false,
    startupMs: 1,
    runMs: 1,
  }
  const executor: Executor = {
    name: 'kubernetes',
    checkIsolation: async () => ({ ok: true, technology: 'gvisor', detail: 'stand-in', reason: null, isolation }),
    runtimeVersions: async () => ({}),
    run: async () => {
      throw new Error('a job taken over is never launched again')
    },
    adopt: async (request: ExecutionRequest) => {
      adopted.push(request.jobId)
      await released
      return outcome
    },
    reapOrphans: async () => 0,
    close: async () => undefined,
  }
  const runner = new JobRunner(store, executor, isolation, 'this-worker', createLogger('silent'), new Metrics())

  const delivered = runner.run(id)
  const swept = runner.adoptOrLose(id, 'gone-worker')
  // Both have had their say before the sandbox ends: the take-overs are a few round trips.
  while ((await redis.hget(keys.job(id), 'worker')) !== 'this-worker') await new Promise((r) => setTimeout(r, 5))
  await new Promise((r) => setTimeout(r, 100))
  t.equal(runner.active, 1, 'the job is held here once')
  release()
  t.equal(await delivered, 'done')
  await swept
  t.same(adopted, [id], 'its sandbox was followed once')
  t.equal(runner.active, 0, 'and the job is let go once it ended')
  const stored = await store.get(id)
  t.equal(stored?.job.status, 'succeeded', 'with the outcome of the sandbox it followed')
  await runner.flushCleanups()
})
