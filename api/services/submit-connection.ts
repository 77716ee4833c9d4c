import { createIORedisClient, type Queue } from 'bullmq'
import type { ChainableCommander, Redis } from 'ioredis'
import { defineJobScripts } from '../../core/job-lifecycle/scripts.js'

/** bullmq's script for a job's queue entry: the one script of bullmq's a submission runs. */
const QUEUE_ENTRY_SCRIPT = 'addStandardJob'

/** ioredis keeps the scripts defined on a connection here, by command name. */
interface DefinedScripts {
  scriptsSet: Record<string, { lua: string; numberOfKeys?: number | null }>
}

export interface SubmitConnection {
  /** For a submission's reads. */
  pipeline(): ChainableCommander
  /** For its writes: a transaction bullmq can add queue entries to. */
  multi(): ChainableCommander
  /** Drops and remakes the connection (its scripts are sent again on first use). */
  reconnect(): void
  /**
   * The connection itself, for a take-back of what a transaction on it made: Redis runs a
   * connection's commands in order, so the take-back comes after the transaction even when
   * the transaction's answer timed out before Redis ran it.
   */
  readonly redis: Redis
}

/**
 * A connection of its own for submissions, with only the scripts a submission runs
 * defined on it: ours and bullmq's queue entry, copied from the queue's connection once
 * bullmq has defined its scripts there. ioredis copies every script of a connection onto
 * each pipeline and transaction made from it, and the queue's connection has all of
 * bullmq's (~60): that copy was ~40 us of every single submit (docs/benchmarks.md).
 */
export async function submitConnection(redis: Redis, queue: Queue): Promise<SubmitConnection> {
  // bullmq types its connection as its own interface over ioredis's.
  const queueRedis = (await queue.backend.client) as unknown as DefinedScripts
  const defined = Object.entries(queueRedis.scriptsSet).find(([name]) => name.startsWith(`${QUEUE_ENTRY_SCRIPT}:`))
  // bullmq names its scripts `name:version`; without it, its internals have changed under us.
  if (!defined) throw new Error(`bullmq defines no ${QUEUE_ENTRY_SCRIPT} script on the queue's connection`)
  const [name, script] = defined
  defineJobScripts(redis)
  if (!(name in redis)) redis.defineCommand(name, { lua: script.lua, numberOfKeys: script.numberOfKeys ?? undefined })
  // bullmq's wrapper gives transactions the `runCommand` its adds go through.
  const bull = createIORedisClient(redis) as unknown as Redis
  return {
    pipeline: () => redis.pipeline(),
    multi: () => bull.multi(),
    reconnect: () => redis.disconnect(true),
    redis,
  }
}
