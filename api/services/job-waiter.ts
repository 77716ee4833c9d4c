import type { Redis } from 'ioredis'

/**
 * Lets requests wait for jobs to finish (`?wait=true`) without polling: one Redis
 * subscription per API process to the "finished" channel, fanned out in memory.
 * Callers must re-read the job after `register`, since it may have finished before.
 */
export class JobWaiter {
  private readonly waiting = new Map<string, Set<() => void>>()
  private subscribed: Promise<unknown> | undefined
  private readonly releases = new Set<() => void>()

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
  ) {
    subscriber.on('message', (channel: string, jobId: string) => {
      if (channel !== this.channel) return
      const set = this.waiting.get(jobId)
      if (!set) return
      this.waiting.delete(jobId)
      for (const wake of set) wake()
    })
  }

  async ready(): Promise<void> {
    // A subscribe that failed (Redis away) is tried again by the next wait, not kept as
    // the answer of every wait to come.
    this.subscribed ??= this.subscriber.subscribe(this.channel).catch((err: unknown) => {
      this.subscribed = undefined
      throw err
    })
    await this.subscribed
  }

  /** How many waits are held now. */
  get held(): number {
    return this.releases.size
  }

  /** Answers every waiting request now (shutdown): they reply with the job's current state. */
  releaseAll(): void {
    for (const release of [...this.releases]) release()
  }

  /** Resolves true when the job finishes, false after `timeoutMs` or when `signal` aborts. */
  wait(jobId: string, timeoutMs: number, signal?: AbortSignal): { finished: Promise<boolean>; cancel: () => void } {
    // An abort that has been fires no listener: the wait would be held to its timeout.
    if (signal?.aborted) return { finished: Promise.resolve(false), cancel: () => undefined }
    let wake!: () => void
    let release!: () => void
    let timer: NodeJS.Timeout | undefined
    const finished = new Promise<boolean>((resolve) => {
      const done = (value: boolean) => {
        clearTimeout(timer)
        this.releases.delete(release)
        signal?.removeEventListener('abort', onAbort)
        this.waiting.get(jobId)?.delete(wake)
        if (this.waiting.get(jobId)?.size === 0) this.waiting.delete(jobId)
        resolve(value)
      }
      const onAbort = () => done(false)
      wake = () => done(true)
      release = () => done(false)
      this.releases.add(release)
      timer = setTimeout(() => done(false), timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      const set = this.waiting.get(jobId) ?? new Set()
      set.add(wake)
      this.waiting.set(jobId, set)
    })
    return { finished, cancel: () => wake() }
  }
}
