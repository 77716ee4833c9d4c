/**
 * Every Redis key and channel Airlock uses, in one place. All of them hang off one
 * prefix so that several deployments (or test files) can share one Redis safely.
 * The `{prefix}` hash tag keeps a deployment's keys in one Redis Cluster slot, which
 * the Lua scripts and BullMQ both need.
 */
export interface RedisKeys {
  readonly prefix: string
  /** BullMQ's own prefix; its keys live under `{prefix}:bull:<queue>:*`. */
  readonly bullPrefix: string
  job(id: string): string
  /** Pub/sub: a job id is published here when the job reaches a final status. */
  readonly finishedChannel: string
  /** Pub/sub: a job id is published here when a running job must be killed. */
  readonly cancelChannel: string
  /** Sorted set of live workers, scored by last heartbeat (ms). */
  readonly workers: string
  /** Hash: worker id -> JSON heartbeat (executor, isolation report). */
  readonly workerInfo: string
}

export function redisKeys(prefix: string): RedisKeys {
  const p = `{${prefix}}`
  return {
    prefix: p,
    bullPrefix: `${p}:bull`,
    job: (id) => `${p}:job:${id}`,
    finishedChannel: `${p}:events:finished`,
    cancelChannel: `${p}:events:cancel`,
    workers: `${p}:workers`,
    workerInfo: `${p}:workers:info`,
  }
}

export const QUEUE_NAME = 'jobs'
