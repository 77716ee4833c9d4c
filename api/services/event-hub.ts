import type { Redis } from 'ioredis'
import type { RedisKeys } from '../../core/redis-keys.js'

/**
 * Wakes local stream sessions when their job gets a new event. One Redis subscriber
 * per API process; a job's channel is subscribed while at least one local client
 * watches it. Nothing else about streams is kept in memory: the events themselves are
 * read from Redis, so any replica can serve any job.
 */
export class EventHub {
  /** Each watched job's wakes, and its channel's subscribe (every watcher waits for it). */
  private readonly watchers = new Map<string, { wakes: Set<() => void>; subscribed: Promise<unknown> }>()
  private readonly jobByChannel = new Map<string, string>()

  constructor(
    private readonly subscriber: Redis,
    private readonly keys: RedisKeys,
  ) {
    subscriber.on('message', (channel: string) => {
      const jobId = this.jobByChannel.get(channel)
      if (!jobId) return
      for (const wake of this.watchers.get(jobId)?.wakes ?? []) wake()
    })
  }

  get watchedJobs(): number {
    return this.watchers.size
  }

  /** Calls `wake` after each new event of the job until the returned function is called. */
  async watch(jobId: string, wake: () => void): Promise<() => Promise<void>> {
    const channel = this.keys.jobNotify(jobId)
    let entry = this.watchers.get(jobId)
    if (!entry) {
      const made = { wakes: new Set<() => void>(), subscribed: this.subscriber.subscribe(channel) }
      this.watchers.set(jobId, made)
      this.jobByChannel.set(channel, jobId)
      // A subscribe that failed is no subscription: the job's next watcher asks again.
      made.subscribed.catch(() => {
        if (this.watchers.get(jobId) !== made) return
        this.watchers.delete(jobId)
        this.jobByChannel.delete(channel)
      })
      entry = made
    }
    const mine = entry
    // In the set before the subscribe is waited for: another watcher of the job that came
    // and went meanwhile would have found it empty, dropped it and unsubscribed.
    mine.wakes.add(wake)
    const unwatch = async () => {
      if (this.watchers.get(jobId) !== mine) return
      mine.wakes.delete(wake)
      if (mine.wakes.size > 0) return
      this.watchers.delete(jobId)
      this.jobByChannel.delete(channel)
      await this.subscriber.unsubscribe(channel).catch(() => undefined)
    }
    // Every watcher, not only the first, is told of events only once the channel is subscribed.
    try {
      await mine.subscribed
    } catch (err) {
      await unwatch()
      throw err
    }
    return unwatch
  }
}
