import type { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import type { JobEventReader, StoredEvent } from '../../core/job-events.js'
import type { JobStore } from '../../core/job-store.js'
import { isFinalStatus } from '../../core/job-status.js'
import type { Metrics } from '../../core/metrics.js'
import type { EventHub } from './event-hub.js'

/** WebSocket close codes clients act on. */
export const CloseCodes = {
  /** The job ended and every event was sent. */
  ENDED: 1000,
  /** The server is restarting; reconnect (to any replica) with `?from=<seq>`. */
  RESTARTING: 1012,
  /** The client read too slowly; reconnect with `?from=<last seq received>`. */
  SLOW_CONSUMER: 4001,
} as const

export interface StreamLimits {
  /** Bytes queued to one client before it counts as slow. */
  maxBufferedBytes: number
  /** How long a client may stay above `maxBufferedBytes` before it is dropped. */
  slowClientGraceMs: number
  /** Events read from Redis at a time. */
  batch: number
  /** Re-read interval in case a pub/sub wake-up was lost. */
  pollMs: number
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxBufferedBytes: 1024 * 1024, slowClientGraceMs: 10_000, batch: 32, pollMs: 2000 }

export interface SessionDeps {
  store: JobStore
  reader: JobEventReader
  hub: EventHub
  log: FastifyBaseLogger
  limits: StreamLimits
  metrics: Metrics
}

/**
 * One client watching one job: replays events after `from`, then follows new ones,
 * then sends `end` with the finished job and closes. Reads only as fast as the client
 * drains, so a slow client costs at most `maxBufferedBytes` plus one batch of memory.
 */
export class StreamSession {
  private cursor: number
  private reading = false
  private dirty = false
  private closed = false
  private poll: NodeJS.Timeout | undefined
  private unwatch: (() => Promise<void>) | undefined

  constructor(
    private readonly socket: WebSocket,
    private readonly jobId: string,
    from: number,
    private readonly deps: SessionDeps,
  ) {
    this.cursor = from
  }

  /** Last seq sent to the client. */
  get seq(): number {
    return this.cursor
  }

  async start(): Promise<void> {
    this.deps.metrics.streamClients.inc()
    this.socket.on('close', () => void this.stop())
    this.socket.on('error', () => void this.stop())
    // Clients have nothing to say on this stream; whatever they send is dropped.
    this.socket.on('message', () => undefined)
    this.unwatch = await this.deps.hub.watch(this.jobId, () => void this.pump())
    this.poll = setInterval(() => void this.pump(true), this.deps.limits.pollMs)
    await this.pump(true)
  }

  close(code: number, reason: string): void {
    if (this.closed) return
    void this.stop()
    this.socket.close(code, reason.slice(0, 120))
  }

  private async stop(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.deps.metrics.streamClients.dec()
    clearInterval(this.poll)
    await this.unwatch?.()
  }

  private async pump(checkFinished = false): Promise<void> {
    if (this.closed) return
    if (this.reading) {
      this.dirty = true
      return
    }
    this.reading = true
    try {
      do {
        this.dirty = false
        for (;;) {
          if (!(await this.roomToSend())) return
          const events = await this.deps.reader.after(this.jobId, this.cursor, this.deps.limits.batch)
          if (events.length === 0) break
          for (const event of events) {
            if (this.closed) return
            if (event.type === 'end') return await this.end(event)
            if (!(await this.roomToSend())) return
            this.send(event)
          }
        }
      } while (this.dirty && !this.closed)
      // Events of a finished job can be gone (retention) while its record is not.
      if (checkFinished) {
        const stored = await this.deps.store.get(this.jobId)
        if (stored && isFinalStatus(stored.status) && (await this.deps.reader.after(this.jobId, this.cursor, 1)).length === 0) {
          await this.end({ type: 'end', seq: this.cursor + 1, ts: stored.job.finishedAt ?? new Date().toISOString() })
        }
      }
    } catch (err) {
      this.deps.log.warn({ err, jobId: this.jobId }, 'stream read failed; will retry')
    } finally {
      this.reading = false
    }
  }

  private send(event: StoredEvent): void {
    this.socket.send(JSON.stringify(event))
    if (event.type === 'log') this.deps.metrics.streamBytesSent.inc(Buffer.byteLength(event.data))
    this.cursor = event.seq
  }

  private async end(event: Extract<StoredEvent, { type: 'end' }>): Promise<void> {
    const stored = await this.deps.store.get(this.jobId)
    if (this.closed || !stored) return
    this.socket.send(JSON.stringify({ ...event, job: stored.job }))
    this.cursor = event.seq
    this.close(CloseCodes.ENDED, 'job ended')
  }

  /** Waits while the client's queue is full; drops the client if it stays full. */
  private async roomToSend(): Promise<boolean> {
    const { maxBufferedBytes, slowClientGraceMs } = this.deps.limits
    const deadline = Date.now() + slowClientGraceMs
    while (!this.closed && this.socket.bufferedAmount > maxBufferedBytes) {
      if (Date.now() > deadline) {
        this.deps.log.info({ jobId: this.jobId, seq: this.cursor }, 'dropping a slow stream client')
        this.close(CloseCodes.SLOW_CONSUMER, `slow consumer; reconnect with ?from=<last seq received>`)
        return false
      }
      await new Promise((r) => setTimeout(r, 25))
    }
    return !this.closed
  }
}
