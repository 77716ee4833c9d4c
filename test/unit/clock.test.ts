import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { now, sinceClockStep, syncClock } from '../../core/clock.js'
import { redisKeys } from '../../core/redis-keys.js'
import { type WorkerHeartbeat, WorkerRegistry } from '../../core/worker-registry.js'
import { redisUrl } from '../helper.js'

// Found by review 19: heartbeats were dated by each worker's own clock and judged stale by
// the reader's, so a worker whose clock was 20 s slow was taken for dead (its running jobs
// ended as lost), and a reader 6 min fast forgot every worker. This machine's clock cannot
// be set from a test, so a host's clock being off stands as Date.now() moved in this process.

const redis = new Redis(redisUrl(), { lazyConnect: true })
t.before(() => redis.connect())
t.teardown(() => redis.disconnect())

/** Runs `fn` as on a host whose clock is `skewMs` off. */
async function skewed<T>(skewMs: number, fn: () => Promise<T> | T): Promise<T> {
  const real = Date.now
  Date.now = () => real() + skewMs
  try {
    return await fn()
  } finally {
    Date.now = real
  }
}

async function redisTime(): Promise<number> {
  const [s, us] = await redis.time()
  return Number(s) * 1000 + Number(us) / 1000
}

t.test("once synced, the clock is Redis's, whatever this host's clock says", async (t) => {
  await syncClock(redis)
  for (const skewMs of [-20_000, 6 * 60_000, -24 * 3600_000]) {
    const [ours, theirs] = await skewed(skewMs, async () => [now(), await redisTime()])
    t.ok(Math.abs(ours! - theirs!) < 1000, `a host ${skewMs / 1000} s off: ${ours! - theirs!} ms from Redis's clock`)
  }
})

t.test('a worker whose clock is off is still live to the others, and no reader forgets it', async (t) => {
  await syncClock(redis)
  const keys = redisKeys(`test-clock-${randomBytes(4).toString('hex')}`)
  t.teardown(async () => {
    await redis.del(keys.workers, keys.workersIsolating, keys.workerInfo)
  })
  const registry = new WorkerRegistry(redis, keys)
  const heartbeat = (id: string): WorkerHeartbeat => ({
    id,
    executor: 'local',
    isolation: { ok: true, technology: 'gvisor', detail: 'test', reason: null },
    runtimes: {},
    at: now(),
  })
  // The way WorkerService beats: dated now(), on a host 20 s slow.
  await skewed(-20_000, () => registry.beat(heartbeat('slow-host')))
  await registry.beat(heartbeat('right-host'))
  for (const skewMs of [0, 20_000, 6 * 60_000]) {
    const live = await skewed(skewMs, () => registry.live())
    t.same(live.map((w) => w.id).sort(), ['right-host', 'slow-host'], `seen from a host ${skewMs / 1000} s fast`)
  }
  t.equal(await redis.zcard(keys.workers), 2, 'nobody was forgotten')
})

t.test("a step of Redis's clock is noticed at the next reading, and noise is not", async (t) => {
  // Found by review 20: Redis's clock stepped 20 s, and a worker that had read it took a
  // live worker (still on its old reading) for dead. Redis's clock cannot be stepped on
  // this machine without stepping the machine's: a stand-in answers TIME here, moved.
  let offsetMs = 0
  const stepping = {
    time: async (): Promise<number[]> => {
      const ms = (await redisTime()) + offsetMs
      return [Math.floor(ms / 1000), Math.floor((ms % 1000) * 1000)]
    },
  }
  await syncClock(stepping)
  await syncClock(stepping)
  t.ok(sinceClockStep() > 60_000, 'read twice, unmoved: no step')
  offsetMs = 300
  await syncClock(stepping)
  t.ok(sinceClockStep() > 60_000, 'moved by 300 ms: noise, no step')
  offsetMs = 20_300
  await syncClock(stepping)
  t.ok(sinceClockStep() < 1000, 'moved by 20 s: a step')
  t.ok(Math.abs(now() - (await redisTime()) - 20_300) < 1000, 'and the clock follows it')
  offsetMs = 0
  await syncClock(stepping)
  t.ok(Math.abs(now() - (await redisTime())) < 1000, 'back')
})
