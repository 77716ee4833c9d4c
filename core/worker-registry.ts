import type { ChainableCommander, Redis } from 'ioredis'
import { pipelined } from './redis.js'
import type { RedisKeys } from './redis-keys.js'
import { publicText } from './public-text.js'
import { now as clockNow } from './clock.js'

/** What a worker tells the rest of the deployment about itself, every few seconds. */
export interface WorkerHeartbeat {
  id: string
  executor: string
  /** Whether this worker can isolate jobs; a worker that cannot takes none. */
  isolation: { ok: boolean; technology: string; detail: string; reason: string | null }
  /** Runtime name -> version, as found in the worker's sandbox images. */
  runtimes: Record<string, string>
  at: number
}

export const HEARTBEAT_INTERVAL_MS = 5000
export const HEARTBEAT_TTL_MS = 3 * HEARTBEAT_INTERVAL_MS

export class WorkerRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  async beat(hb: WorkerHeartbeat): Promise<void> {
    const tx = this.redis
      .multi()
      .zadd(this.keys.workers, hb.at, hb.id)
      .hset(this.keys.workerInfo, hb.id, JSON.stringify(hb))
    if (hb.isolation.ok) tx.zadd(this.keys.workersIsolating, hb.at, hb.id)
    else tx.zrem(this.keys.workersIsolating, hb.id)
    await tx.exec()
  }

  async remove(id: string): Promise<void> {
    await this.redis
      .multi()
      .zrem(this.keys.workers, id)
      .zrem(this.keys.workersIsolating, id)
      .hdel(this.keys.workerInfo, id)
      .exec()
  }

  /**
   * Queues on `pipeline` a count of the live workers and of those that can isolate (two
   * small counts, whatever the number of workers), for a submission's one read; `refusal`
   * reads them after it ran. Only when workers are alive and none is counted as isolating
   * does it read their heartbeats (a worker of an older release counts none), so a
   * refusal still gives the workers' reasons.
   */
  countIsolating(pipeline: ChainableCommander, now = clockNow()): { refusal: () => Promise<string | undefined> } {
    const live = pipelined<number>()
    const isolating = pipelined<number>()
    const since = now - HEARTBEAT_TTL_MS
    pipeline.zcount(this.keys.workers, since, '+inf', live.callback)
    pipeline.zcount(this.keys.workersIsolating, since, '+inf', isolating.callback)
    return {
      refusal: async () =>
        live.value() > 0 && isolating.value() === 0 ? isolationRefusal(await this.live(now)) : undefined,
    }
  }

  /** Workers that beat within the TTL; forgets the long dead ones on the way. */
  async live(now = clockNow()): Promise<WorkerHeartbeat[]> {
    const dead = await this.redis.zrangebyscore(this.keys.workers, '-inf', `(${now - 20 * HEARTBEAT_TTL_MS}`)
    if (dead.length > 0) {
      const keys = this.keys
      await this.redis
        .multi()
        .zrem(keys.workers, ...dead)
        .zrem(keys.workersIsolating, ...dead)
        .hdel(keys.workerInfo, ...dead)
        .exec()
    }
    const ids = await this.redis.zrangebyscore(this.keys.workers, now - HEARTBEAT_TTL_MS, '+inf')
    if (ids.length === 0) return []
    const infos = await this.redis.hmget(this.keys.workerInfo, ...ids)
    return infos.filter((s): s is string => s !== null).map((s) => JSON.parse(s) as WorkerHeartbeat)
  }
}

/**
 * Fail closed: when workers are alive and none of them can isolate a job, new jobs are
 * refused with the workers' reasons. With no live worker at all, jobs still queue
 * (a rolling restart must not turn away work); each worker refuses to run if it
 * cannot isolate, so nothing runs unsandboxed either way.
 */
export function isolationRefusal(workers: readonly WorkerHeartbeat[]): string | undefined {
  if (workers.length === 0 || workers.some((w) => w.isolation.ok)) return undefined
  const reasons = [...new Set(workers.map((w) => publicText(w.isolation.reason ?? 'unknown reason', 200)))]
  return `no worker can isolate jobs: ${reasons.slice(0, 3).join('; ')}`
}

/** The version of `runtime` that a live worker reports (from its built image); undefined when none has it. */
export function reportedVersion(workers: readonly WorkerHeartbeat[], runtime: string): string | undefined {
  return workers.find((w) => w.runtimes[runtime])?.runtimes[runtime]
}
