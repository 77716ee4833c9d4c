import type { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import {
  EVENT_MAX_DATA_BYTES,
  EVENT_READ_BYTES,
  EVENT_READ_ENTRIES,
  type JobEventReader,
  type StoredEvent,
} from '../../core/job-events.js'
import type { JobStore } from '../../core/job-store.js'
import { isFinalStatus } from '../../core/job-lifecycle/transitions.js'
import type { Metrics } from '../../core/metrics.js'
import type { EventHub } from './event-hub.js'
import type { OutputBudget } from './output-budget.js'
import { pieceMemoryBytes, type OutputWriter } from './output-writer.js'

/** WebSocket close codes clients act on. */
export const CloseCodes = {
  /** The job ended and every event was sent. */
  ENDED: 1000,
  /** The server is restarting; reconnect (to any replica) with `?from=<seq>`. */
  RESTARTING: 1012,
  /** The client sent a message: clients send nothing on a stream (WebSocket's policy violation). */
  CLIENT_SENT: 1008,
  /** The client read too slowly; reconnect with `?from=<last seq received>`. */
  SLOW_CONSUMER: 4001,
  /** The key the stream was opened with (itself or through a token) was revoked: a valid key is needed. */
  KEY_REVOKED: 4401,
} as const

export interface StreamLimits {
  /** Bytes queued to one client before it counts as slow. */
  maxBufferedBytes: number
  /** How long a client may stay above `maxBufferedBytes` before it is dropped. */
  slowClientGraceMs: number
  /** Re-read interval in case a pub/sub wake-up was lost. */
  pollMs: number
  /** How often an open stream asks again whether the key it was opened with still stands. */
  keyCheckMs: number
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxBufferedBytes: 1024 * 1024,
  slowClientGraceMs: 10_000,
  pollMs: 2000,
  keyCheckMs: 10_000,
}

/**
 * Memory one bounded read of events may take on its way, reserved before it is read: its
 * data (a byte is at most a character) and its events' own fields. A batch is one such
 * read (many small events, or a few big ones: 10,000 events of a byte each were 2,500
 * reads at four a time), held against the process's output budget until the client has
 * taken it.
 */
/** How long a client that has everything we sent has to answer our close frame before its connection is cut. */
export const CLOSE_HANDSHAKE_MS = 2000

/**
 * Pings and pongs a client may send in CONTROL_WINDOW_MS: a keep-alive every few seconds
 * is far below it. Control frames are no message, and each is still parsed (and a ping
 * answered): a client sending empty pongs in a loop kept the event loop busy with 48
 * million of them in 10 s, another tenant's reads at 264 ms (the ninth review).
 */
export const MAX_CONTROL_FRAMES = 16
export const CONTROL_WINDOW_MS = 10_000

const BATCH_MAX_MEMORY_BYTES = pieceMemoryBytes(EVENT_READ_BYTES + EVENT_MAX_DATA_BYTES) + 256 * EVENT_READ_ENTRIES

export interface SessionDeps {
  store: JobStore
  reader: JobEventReader
  hub: EventHub
  log: FastifyBaseLogger
  limits: StreamLimits
  metrics: Metrics
  writer: OutputWriter
  budget: OutputBudget
  /** The job's tenant, whose share of the output budget the session draws on. */
  tenant: string
  /** Whether the key the stream was opened with still stands for the tenant (false once revoked). */
  keyStands: () => Promise<boolean>
}

/**
 * One client watching one job: replays events after `from`, then follows new ones,
 * then sends `end` with the finished job and closes. Reads only as fast as the client
 * drains, so a slow client costs at most `maxBufferedBytes` plus one batch of memory,
 * and every batch (the `end` message's pieces too) is held against the process's
 * output budget until it has left, and the next is read only once it has. Whatever
 * message it waits for, a client that stays above `maxBufferedBytes`, or has not taken
 * a batch, for `slowClientGraceMs` is closed with 4001: a client that never reads holds
 * its tenant's share of the budget no longer than that.
 */
export class StreamSession {
  private cursor: number
  private reading = false
  private dirty = false
  private closed = false
  private poll: NodeJS.Timeout | undefined
  private unwatch: (() => Promise<void>) | undefined
  /** The last batch taken by the client's socket (true), or the client cut for not taking it (false). */
  private flushed: Promise<boolean> = Promise.resolve(true)
  private keyCheckedAt = performance.now()

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
    // Clients have nothing to say on this stream. Each message would still be parsed and
    // dropped: a client sending 1-byte frames took 6.6 s of the event loop in 6 s (the
    // seventh review), so the first one closes the stream.
    this.socket.on('message', () => this.refuseClient('clients send nothing on a stream'))
    let controls = 0
    let windowStart = performance.now()
    const control = () => {
      const now = performance.now()
      if (now - windowStart >= CONTROL_WINDOW_MS) [windowStart, controls] = [now, 0]
      if (++controls > MAX_CONTROL_FRAMES)
        this.refuseClient(`more than ${MAX_CONTROL_FRAMES} pings and pongs in ${CONTROL_WINDOW_MS / 1000} s`)
    }
    this.socket.on('ping', control)
    this.socket.on('pong', control)
    // A client gone already (it closed during the upgrade) must leave no subscription
    // and no poll behind: else each open-and-close would leak a Redis read every pollMs.
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return void this.stop()
    const unwatch = await this.deps.hub.watch(this.jobId, () => void this.pump())
    if (this.closed) return void (await unwatch())
    this.unwatch = unwatch
    this.poll = setInterval(() => void this.tick(), this.deps.limits.pollMs)
    await this.pump(true)
  }

  /**
   * The poll's turn: a stream is worth no more than the key that opened it, so it is
   * closed once that key is revoked (asked every keyCheckMs; a check Redis could not
   * answer is asked again at the next turn, as the stream's own reads would fail too).
   */
  private async tick(): Promise<void> {
    if (performance.now() - this.keyCheckedAt >= this.deps.limits.keyCheckMs) {
      const stands = await this.deps.keyStands().catch(() => true)
      this.keyCheckedAt = performance.now()
      if (!stands && !this.closed) {
        this.deps.log.info('stream closed: its key was revoked')
        return this.close(CloseCodes.KEY_REVOKED, 'the key this stream was opened with was revoked')
      }
    }
    await this.pump(true)
  }

  /**
   * Closes the stream of a client that sent what it may not, and reads nothing more from
   * it: frames it has sent since would each still be parsed until its close frame came.
   */
  private refuseClient(reason: string): void {
    this.close(CloseCodes.CLIENT_SENT, reason)
    this.socket.pause()
  }

  close(code: number, reason: string): void {
    if (this.closed) return
    void this.stop()
    this.socket.close(code, reason.slice(0, 120))
    // ws waits 30 s for the client's close frame; a client that never sends it would hold
    // its stream slot (and the connection) that long after the stream is over. Once all we
    // wrote, the close frame too, has left the process (the kernel delivers it even after
    // the cut), the connection is cut; a client still reading its backlog keeps ws's wait.
    const check = setInterval(() => {
      if (this.socket.bufferedAmount === 0) this.socket.terminate()
    }, CLOSE_HANDSHAKE_MS).unref()
    this.socket.once('close', () => clearInterval(check))
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
          const { ended, more } = await this.sendBatch()
          // The batch's reservation is given back before the end message takes its own.
          if (ended) return await this.end(ended)
          if (!more) break
        }
      } while (this.dirty && !this.closed)
      // Events of a finished job can be gone (retention) while its record is not.
      if (checkFinished) {
        const stored = await this.deps.store.head(this.jobId)
        if (
          stored &&
          isFinalStatus(stored.status) &&
          (await this.deps.reader.after(this.jobId, this.cursor, 1)).length === 0
        ) {
          await this.end({ type: 'end', seq: this.cursor + 1, ts: stored.job.finishedAt ?? new Date().toISOString() })
        }
      }
    } catch (err) {
      this.deps.log.warn({ err, jobId: this.jobId }, 'stream read failed; will retry')
    } finally {
      this.reading = false
    }
  }

  /**
   * Sends one batch of events, held against the output budget until the client's socket
   * has taken them (or is gone). Returns the end event when the batch reached it, and
   * whether there may be more to read.
   */
  private async sendBatch(): Promise<{ ended?: Extract<StoredEvent, { type: 'end' }>; more: boolean }> {
    const hold = await this.deps.budget.take(this.deps.tenant, BATCH_MAX_MEMORY_BYTES)
    const sent: Promise<void>[] = []
    try {
      const events = await this.deps.reader.within(this.jobId, this.cursor)
      hold.shrink(events.reduce((n, e) => n + (e.type === 'log' ? pieceMemoryBytes(e.data.length) : 0) + 256, 0))
      for (const event of events) {
        if (this.closed) return { more: false }
        if (event.type === 'end') return { ended: event, more: false }
        if (!(await this.roomToSend())) return { more: false }
        sent.push(this.send(event))
      }
      return { more: events.length > 0 }
    } finally {
      this.flushed = this.takenWithinGrace(Promise.all(sent)).finally(() => hold.release())
    }
  }

  /** Whether the client's socket took what was sent within the grace; else the client is cut. */
  private async takenWithinGrace(taken: Promise<unknown>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.deps.limits.slowClientGraceMs)
    })
    const inTime = await Promise.race([taken.then(() => true as const), late])
    clearTimeout(timer)
    if (!inTime && !this.closed) {
      this.deps.log.info({ jobId: this.jobId, seq: this.cursor }, 'dropping a stream client that does not read')
      this.close(CloseCodes.SLOW_CONSUMER, 'slow consumer; reconnect with ?from=<last seq received>')
    }
    return inTime
  }

  /** Resolves once the message has left for the client (or the socket is gone). */
  private send(event: StoredEvent): Promise<void> {
    const left = new Promise<void>((resolve) => this.socket.send(JSON.stringify(event), () => resolve()))
    if (event.type === 'log') this.deps.metrics.streamBytesSent.inc(Buffer.byteLength(event.data))
    this.cursor = event.seq
    return left
  }

  /**
   * The `end` message carries the whole job, output included: it is sent as fragments
   * of one WebSocket message, read a piece at a time under the budget, and the client
   * is held to the same slow-client limit between pieces as for any other message.
   */
  private async end(event: Extract<StoredEvent, { type: 'end' }>): Promise<void> {
    const view = await this.deps.store.head(this.jobId)
    if (this.closed || !view) return
    // The whole job goes out only to a key that stands now, not as of the last check.
    if (!(await this.deps.keyStands().catch(() => true))) {
      this.deps.log.info('stream closed at its end: its key was revoked')
      return this.close(CloseCodes.KEY_REVOKED, 'the key this stream was opened with was revoked')
    }
    if (this.closed) return
    const parts = this.deps.writer.endMessage(view, event.seq, event.ts)
    let pending: string | undefined
    try {
      await this.deps.writer.drain(
        parts,
        async (text) => {
          // One piece is kept back so the last one can be sent with fin set.
          if (pending !== undefined) await this.fragment(pending, false)
          pending = text
          if (!(await this.roomToSend())) throw new Error('closed')
        },
        () => this.closed,
      )
    } catch {
      if (!this.closed) this.close(CloseCodes.SLOW_CONSUMER, 'slow consumer; reconnect with ?from=<last seq received>')
      return
    }
    if (this.closed || pending === undefined) return
    await this.fragment(pending, true)
    this.cursor = event.seq
    this.close(CloseCodes.ENDED, 'job ended')
  }

  private fragment(text: string, fin: boolean): Promise<void> {
    return new Promise((resolve) => this.socket.send(text, { fin, binary: false }, () => resolve()))
  }

  /** Waits while the client's queue is full; drops the client if it stays full. */
  private async roomToSend(): Promise<boolean> {
    if (!(await this.flushed)) return false
    const { maxBufferedBytes, slowClientGraceMs } = this.deps.limits
    const deadline = performance.now() + slowClientGraceMs
    while (!this.closed && this.socket.bufferedAmount > maxBufferedBytes) {
      if (performance.now() > deadline) {
        this.deps.log.info({ jobId: this.jobId, seq: this.cursor }, 'dropping a slow stream client')
        this.close(CloseCodes.SLOW_CONSUMER, `slow consumer; reconnect with ?from=<last seq received>`)
        return false
      }
      await new Promise((r) => setTimeout(r, 25))
    }
    return !this.closed
  }
}
