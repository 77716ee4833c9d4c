import t, { type Test } from 'tap'
import type { Isolation, JobOutcome } from '../../core/job.js'
import { newJobId } from '../../core/job-store.js'
import { createLogger } from '../../core/logger.js'
import { Metrics } from '../../core/metrics.js'
import type { ExecutionRequest, Executor } from '../../worker/executors/executor.js'
import { JobRunner } from '../../worker/job-runner.js'
import { REASONS } from '../../core/job-lifecycle/reasons.js'
import { storeOnRedis } from '../helper.js'
import { until } from '../processes.js'

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

/** A JobStore on the real Redis under a prefix of its own, and a job running on a worker that then stopped. */
async function runningOnGoneWorker(t: Test) {
  const { redis, keys, store, spec } = storeOnRedis(t, 'test-runner')
  const id = newJobId()
  await store.create(id, 'alice', spec)
  t.equal(await store.claim(id, 'gone-worker'), 'claimed', 'the job runs on a worker that then stopped')
  return { redis, keys, store, id }
}

/**
 * Only the Kubernetes executor adopts (its Jobs outlive a worker), and this machine's
 * cluster is for test/kube: a stand-in, whose `adopt` is given; the runner is what is tested.
 */
const standIn = (adopt: Executor['adopt'], forgotten: string[] = []): Executor => ({
  name: 'kubernetes',
  checkIsolation: async () => ({ ok: true, technology: 'gvisor', detail: 'stand-in', reason: null, isolation }),
  runtimeVersions: async () => ({}),
  run: async () => {
    throw new Error('a job taken over is never launched again')
  },
  adopt,
  forget: async (jobId) => {
    forgotten.push(jobId)
  },
  reapOrphans: async () => 0,
  close: async () => undefined,
})

t.test('a job taken over once though its second delivery and the sweep come for it at once', async (t) => {
  // Found by a review of what the worker holds: `run` (BullMQ delivered a running job again)
  // and `adoptOrLose` (the sweep found its worker gone) each checked that the job was not
  // held here before their first wait, both took it over and both followed its sandbox.
  const { redis, keys, store, id } = await runningOnGoneWorker(t)
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
  const executor = standIn(async (request: ExecutionRequest) => {
    adopted.push(request.jobId)
    await released
    return outcome
  })
  const runner = new JobRunner(store, executor, isolation, 'this-worker', createLogger('silent'), new Metrics())

  const delivered = runner.run(id)
  const swept = runner.adoptOrLose(id, 'gone-worker')
  // Both have had their say before the sandbox ends: the take-overs are a few round trips.
  await until(
    () => redis.hget(keys.job(id), 'worker'),
    (w) => w === 'this-worker',
    5000,
    'the take-over',
  )
  await new Promise((r) => setTimeout(r, 100))
  release()
  t.equal(await delivered, 'done')
  await swept
  t.same(adopted, [id], 'its sandbox was followed once')
  t.equal(runner.active, 0, 'and the job is let go once it ended')
  const stored = await store.get(id)
  t.equal(stored?.job.status, 'succeeded', 'with the outcome of the sandbox it followed')
  await runner.flushCleanups()
})

t.test('a job taken over whose sandbox cannot be followed still ends, as lost', async (t) => {
  // Found by a code review: once the sweep had taken the job over, a sandbox not there (or
  // an executor failing to follow it) left the job running under this live worker, which
  // the sweep skips, and the stopped worker's loss was no longer there to mark.
  for (const [name, adopt] of [
    ['no sandbox', async () => null],
    [
      'an executor that fails',
      async () => {
        throw new Error('the API server went away')
      },
    ],
  ] as const) {
    const { store, id } = await runningOnGoneWorker(t)
    const forgotten: string[] = []
    const executor = standIn(adopt, forgotten)
    const runner = new JobRunner(store, executor, isolation, 'this-worker', createLogger('silent'), new Metrics())
    await runner.adoptOrLose(id, 'gone-worker')
    await runner.flushCleanups()
    t.same(forgotten, [id], `${name}: what the executor held for it is cleaned up`)
    const stored = await store.get(id)
    t.equal(stored?.job.status, 'error', `${name}: the job ended`)
    t.equal(stored?.job.reason, REASONS.workerLost, `${name}: as lost`)
    t.equal(runner.active, 0, `${name}: and is not held`)
  }
})
