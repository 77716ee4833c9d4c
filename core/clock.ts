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

/** How often a process reads Redis's clock again (its monotonic clock drifts by parts per million). */
export const CLOCK_SYNC_INTERVAL_MS = 60_000

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
export async function syncClock(redis: Redis): Promise<void> {
  const sent = performance.now()
  const [seconds, micros] = await redis.time()
  const received = performance.now()
  base = { redisMs: Number(seconds) * 1000 + Number(micros) / 1000, monotonicMs: (sent + received) / 2 }
}

/** Syncs again every CLOCK_SYNC_INTERVAL_MS; a sync that fails keeps the last one. Returns the stop. */
export function keepClockInSync(redis: Redis, onError: (err: unknown) => void): () => void {
  const timer = setInterval(() => void syncClock(redis).catch(onError), CLOCK_SYNC_INTERVAL_MS)
  timer.unref()
  return () => clearInterval(timer)
}
