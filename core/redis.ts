import { Redis, type RedisOptions } from 'ioredis'

/**
 * How long a `command` connection waits for a reply. Redis answers the API's commands
 * in well under a millisecond here; one stalled but still connected (paused, swapping, a
 * long script of someone else's) held requests for as long as it stalled.
 */
export const COMMAND_TIMEOUT_MS = 5000

/**
 * `command` connections answer quickly or fail: while Redis is unreachable or stalled, a
 * request gets a 503 instead of hanging on an offline queue or a reply that does not
 * come. `blocking` connections are for BullMQ workers and subscribers, which must wait
 * for Redis to come back.
 */
export function createRedis(url: string, kind: 'command' | 'blocking', extra: RedisOptions = {}): Redis {
  const base: RedisOptions =
    kind === 'command'
      ? {
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          connectTimeout: 5000,
          commandTimeout: COMMAND_TIMEOUT_MS,
          lazyConnect: true,
        }
      : { maxRetriesPerRequest: null, lazyConnect: true }
  // A primary demoted under a connection (a failover behind one address, as managed Redis
  // does it) answers every write READONLY until the connection is made anew. The refused
  // command fails (READONLY is "refusing for now": the caller tries again, or answers 503);
  // sending it again on the new connection at once would loop as fast as the replica
  // answers while the address still leads to one.
  const reconnectOnError = (err: Error) => err.message.startsWith('READONLY')
  return new Redis(url, { ...base, reconnectOnError, ...extra })
}

/**
 * Redis cannot be reached, or stalled: ioredis with the offline queue disabled, retries
 * exhausted, a socket error, no reply within the command timeout; or Redis had lost the
 * scripts (SCRIPT FLUSH), which the next connection sends again.
 */
export function isRedisUnreachable(err: Error): boolean {
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /enableOfflineQueue|Connection is closed|ECONNREFUSED|ETIMEDOUT|ECONNRESET|^Command timed out|^NOSCRIPT/.test(
      err.message,
    )
  )
}

/**
 * Redis refuses for now what it will take later: full (noeviction), loading its data
 * after a restart, busy with a long script, a replica or a cluster not ready, a failed
 * save that stops writes.
 */
export function isRedisRefusingForNow(err: Error): boolean {
  return /^(OOM|LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|MISCONF|NOREPLICAS) /.test(err.message)
}

/**
 * A reply of a command queued on a pipeline or transaction, read once it has run: pass
 * `callback` as the command's callback, call `value` after `exec`. Lets each store queue
 * its own reads on one pipeline (one round trip) and keep how they are read to itself.
 */
export function pipelined<T>(): { callback: (err?: Error | null, value?: T) => void; value: () => T } {
  let reply: { err?: Error | null; value?: T } | undefined
  return {
    callback: (err, value) => {
      reply = { err, value }
    },
    value: () => {
      if (!reply) throw new Error('read before the pipeline ran')
      if (reply.err) throw reply.err
      return reply.value as T
    },
  }
}
