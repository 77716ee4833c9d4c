import { performance } from 'node:perf_hooks'
import type { Redis } from 'ioredis'

/**
 * The deployment's one clock, for every time that another process reads or compares:
 * heartbeats and who is alive, a job's stored times and expiries, rate windows, stream
 * tokens. It is Redis's clock, read at a sync and carried forward by this process's
 * monotonic clock, so neither a host whose clock is off nor an NTP step moves it (a worker
 * whose clock was 20 s slow was taken for dead by the others, and its running jobs ended;
 * review 19). Durations within one process use `performance.now()` instead.
 */
let base: { redisMs: number; monotonicMs: number } | undefined

/**
 * How often a process reads Redis's clock again: its monotonic clock drifts by parts per
 * million, but Redis's own clock can be stepped (or Redis fail over to a host with
 * another), and until every process has read it again their times disagree by the step.
 * As often as workers beat, so that no process runs on an old reading for longer than a beat.
 */
export const CLOCK_SYNC_INTERVAL_MS = 5000

/**
 * A correction larger than this at a sync is a step of Redis's clock, not noise; a
 * reading whose round trip took longer says too little to correct by, and is dropped.
 */
export const CLOCK_STEP_MS = 1000

/** performance.now() of the last sync that found Redis's clock stepped. */
let steppedAt = Number.NEGATIVE_INFINITY

/**
 * Now, in ms since the epoch, on Redis's clock; this host's own clock until the first
 * sync (a process syncs before it serves or takes jobs: syncClock).
 */
export function now(): number {
  // Whole milliseconds, as Date.now(): stored times are parsed back as integers (a listing's cursor).
  return base ? Math.floor(base.redisMs + (performance.now() - base.monotonicMs)) : Date.now()
}

/**
 * Reads Redis's clock (`TIME`), taking it to be the time halfway through the round trip.
 * A process calls this before it serves or takes jobs, then keeps it in sync (keepClockInSync).
 */
export async function syncClock(redis: Pick<Redis, 'time'>): Promise<void> {
  const sent = performance.now()
  const [seconds, micros] = await redis.time()
  const received = performance.now()
  if (base && received - sent > CLOCK_STEP_MS) return
  const next = { redisMs: Number(seconds) * 1000 + Number(micros) / 1000, monotonicMs: (sent + received) / 2 }
  if (base && Math.abs(next.redisMs - (base.redisMs + (next.monotonicMs - base.monotonicMs))) > CLOCK_STEP_MS)
    steppedAt = received
  base = next
}

/**
 * Milliseconds since a sync found Redis's clock stepped (Infinity if none has). For a
 * heartbeat's time after that, the others may not have read the step yet: a worker waits
 * a heartbeat's TTL before it takes anyone for dead (review 20: Redis's clock stepped 20 s,
 * and a worker that had read it ended a live worker's job as lost).
 */
export function sinceClockStep(): number {
  return performance.now() - steppedAt
}

/**
 * Reads Redis's clock now, then every CLOCK_SYNC_INTERVAL_MS and whenever the connection
 * is made anew (Redis may then be another host, with a clock of its own); a later reading
 * that fails keeps the last one. Returns the stop.
 */
export async function keepClockInSync(redis: Redis, onError: (err: unknown) => void): Promise<() => void> {
  await syncClock(redis)
  const sync = () => void syncClock(redis).catch(onError)
  const timer = setInterval(sync, CLOCK_SYNC_INTERVAL_MS)
  timer.unref()
  redis.on('ready', sync)
  return () => {
    clearInterval(timer)
    redis.off('ready', sync)
  }
}
