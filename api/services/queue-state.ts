import type { Queue } from 'bullmq'
import { now as clockNow } from '../../core/clock.js'

export interface QueueState {
  counts: Record<string, number>
  /** How long the oldest job still waiting has waited (ms), or null when none waits. */
  oldestQueuedAgeMs: number | null
}

export async function readQueueState(queue: Queue): Promise<QueueState> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')
  // Jobs are taken from one end of the wait list; look at both ends to find the oldest.
  const ends = [...(await queue.getWaiting(0, 0)), ...(await queue.getWaiting(-1, -1))]
  const oldest = ends.reduce<number | null>(
    (min, job) => (min === null || job.timestamp < min ? job.timestamp : min),
    null,
  )
  // An entry is dated by the deployment's clock (queueEntry), and so is its age here: by
  // the adding API's own clock, an API 10 minutes slow showed jobs 10 minutes old.
  return { counts, oldestQueuedAgeMs: oldest === null ? null : Math.max(0, clockNow() - oldest) }
}
