import type { Redis } from 'ioredis'
import type { RedisKeys } from '../../core/redis-keys.js'

/**
 * Wakes local stream sessions when their job gets a new event. One Redis subscriber
 * per API process; a job's channel is subscribed while at least one local client
 * watches it. Nothing else about streams is kept in memory: the events themselves are
 * read from Redis, so any replica can serve any job.
 */
export class EventHub {
  private readonly watchers = new Map<string, Set<() => void>>()
  private readonly jobByChannel = new Map<string, string>()

  constructor(
    private readonly subscriber: Redis,
    private readonly keys: RedisKeys,
  ) {
    subscriber.on('message', (channel: string) => {
      const jobId = this.jobByChannel.get(channel)
      if (!jobId) return
      for (const wake of this.watchers.get(jobId) ?? []) wake()
    })
  }

  get watchedJobs(): number {
    return this.watchers.size
  }

  /** Calls `wake` after each new event of the job until the returned function is called. */
  async watch(jobId: string, wake: () => void): Promise<() => Promise<void>> {
    const channel = this.keys.jobNotify(jobId)
    let set = this.watchers.get(jobId)
    const first = !set
    if (!set) {
      set = new Set()
      this.watchers.set(jobId, set)
      this.jobByChannel.set(channel, jobId)
    }
    // Added before the subscribe is waited for: another watcher of the job that came and
    // went meanwhile would have found the set empty, dropped it and unsubscribed.
    set.add(wake)
    const unwatch = async () => {
      const current = this.watchers.get(jobId)
      if (!current) return
      current.delete(wake)
      if (current.size > 0) return
      this.watchers.delete(jobId)
      this.jobByChannel.delete(channel)
      await this.subscriber.unsubscribe(channel).catch(() => undefined)
    }
    if (first) {
      try {
        await this.subscriber.subscribe(channel)
      } catch (err) {
        await unwatch()
        throw err
      }
    }
    return unwatch
  }
}
