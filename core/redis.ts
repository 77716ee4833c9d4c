import { Redis, type RedisOptions } from 'ioredis'

/**
 * `command` connections answer quickly or fail: while Redis is unreachable, a request
 * gets a 503 instead of hanging on an offline queue. `blocking` connections are for
 * BullMQ workers and subscribers, which must wait for Redis to come back.
 */
export function createRedis(url: string, kind: 'command' | 'blocking', extra: RedisOptions = {}): Redis {
  const base: RedisOptions =
    kind === 'command'
      ? { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5000, lazyConnect: true }
      : { maxRetriesPerRequest: null, lazyConnect: true }
  return new Redis(url, { ...base, ...extra })
}
