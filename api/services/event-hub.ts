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
    let set = this.watchers.get(jobId)
    if (!set) {
      set = new Set()
      this.watchers.set(jobId, set)
      const channel = this.keys.jobNotify(jobId)
      this.jobByChannel.set(channel, jobId)
      await this.subscriber.subscribe(channel)
    }
    set.add(wake)
    return async () => {
      const current = this.watchers.get(jobId)
      if (!current) return
      current.delete(wake)
      if (current.size > 0) return
      this.watchers.delete(jobId)
      const channel = this.keys.jobNotify(jobId)
      this.jobByChannel.delete(channel)
      await this.subscriber.unsubscribe(channel).catch(() => undefined)
    }
  }
}
