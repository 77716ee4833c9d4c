import type { Queue } from 'bullmq'

export interface QueueState {
  counts: Record<string, number>
  /** When the oldest job still waiting was queued (ms), or null when none waits. */
  oldestQueuedMs: number | null
}

export async function readQueueState(queue: Queue): Promise<QueueState> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')
  // Jobs are taken from one end of the wait list; look at both ends to find the oldest.
  const ends = [...(await queue.getWaiting(0, 0)), ...(await queue.getWaiting(-1, -1))]
  const oldest = ends.reduce<number | null>(
    (min, job) => (min === null || job.timestamp < min ? job.timestamp : min),
    null,
  )
  return { counts, oldestQueuedMs: oldest }
}
