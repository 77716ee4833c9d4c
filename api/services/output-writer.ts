import type { FastifyReply } from 'fastify'
import type { JobEventReader } from '../../core/job-events.js'
import type { JobOutputReader } from '../../core/job-output.js'
import type { JobView } from '../../core/job-store.js'
import type { OutputBudget } from './output-budget.js'

/** Writes text out of the process; resolves once it has left (flushed to the socket). */
export type Flush = (text: string) => Promise<void>

const EVENTS_PER_READ = 4

/** A reader left a piece unread past the slow-reader limit. */
export class SlowReaderError extends Error {
  constructor() {
    super('the reader did not take its output in time')
    this.name = 'SlowReaderError'
  }
}

/**
 * What a piece costs the process while it is on its way, roughly: its share of the
 * reply Redis sent, the string (2 bytes a character), its JSON-escaped copy and the
 * bytes handed to the socket. The budget counts this, not just the text.
 */
export function pieceMemoryBytes(chars: number): number {
  return chars * 8
}

/**
 * Everything the API sends that carries job output (a job, its log, a stream's `end`
 * message) goes out through here: read from Redis a piece at a time, each piece held
 * against the process's output budget from before it is read until it has left the
 * process. Nothing here ever holds a whole stream of output.
 */
export class OutputWriter {
  constructor(
    private readonly output: JobOutputReader,
    private readonly events: JobEventReader,
    private readonly budget: OutputBudget,
    /** How long one piece may take to leave before its reader counts as stuck and is cut. */
    private readonly slowReaderMs: number,
  ) {}

  /** The job as JSON (the shape of JobSchema), its stdout and stderr read in pieces. */
  async *jobJson(view: JobView): AsyncGenerator<string> {
    const head = JSON.stringify(view.job)
    yield `${head.slice(0, -1)},"stdout":"`
    for await (const piece of this.output.pieces(view.id, view.output, 'stdout')) yield JSON.stringify(piece).slice(1, -1)
    yield '","stderr":"'
    for await (const piece of this.output.pieces(view.id, view.output, 'stderr')) yield JSON.stringify(piece).slice(1, -1)
    yield '"}'
  }

  /** The stream's `end` message: `{type:"end",job,seq,ts}`. */
  async *endMessage(view: JobView, seq: number, ts: string): AsyncGenerator<string> {
    yield '{"type":"end","job":'
    yield* this.jobJson(view)
    yield `,"seq":${seq},"ts":${JSON.stringify(ts)}}`
  }

  /** Every log event's text, in order (`GET /logs` as text). */
  logText(view: JobView): AsyncGenerator<string> {
    return this.output.pieces(view.id, view.output, 'both')
  }

  /** Every event as a line of JSON; the `end` line carries the job (`GET /logs` as NDJSON). */
  async *ndjson(view: JobView): AsyncGenerator<string> {
    for await (const event of this.allEvents(view.id)) {
      if (event.type !== 'end') {
        yield `${JSON.stringify(event)}\n`
        continue
      }
      yield `{"type":"end","seq":${event.seq},"ts":${JSON.stringify(event.ts)},"job":`
      yield* this.jobJson(view)
      yield '}\n'
    }
  }

  private async *allEvents(jobId: string) {
    for (let cursor = 0; ; ) {
      const batch = await this.events.after(jobId, cursor, EVENTS_PER_READ)
      yield* batch
      if (batch.length < EVENTS_PER_READ) return
      cursor = batch[batch.length - 1]!.seq
    }
  }

  /**
   * Pulls `parts` one at a time under the budget: a piece's bytes are taken before it is
   * read and given back once `flush` says it left the process.
   */
  async drain(parts: AsyncIterator<string>, flush: Flush, isClosed: () => boolean = () => false): Promise<void> {
    const reserve = pieceMemoryBytes(this.output.pieceChars)
    for (;;) {
      if (isClosed()) return
      const hold = await this.budget.take(reserve)
      try {
        const next = await parts.next()
        if (next.done) return
        hold.shrink(pieceMemoryBytes(next.value.length))
        await this.flushInTime(flush, next.value)
      } finally {
        hold.release()
      }
    }
  }

  /** A reader that does not take a piece in time gives its budget back to the others. */
  private async flushInTime(flush: Flush, text: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        flush(text),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new SlowReaderError()), this.slowReaderMs)
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Answers with a body of `parts`, written straight to the socket so the budget knows
   * when each piece has left. An error before the first byte is the caller's to answer;
   * after it, the connection is cut (the client sees a truncated body, never a wrong one).
   */
  async send(reply: FastifyReply, status: number, contentType: string, parts: AsyncGenerator<string>): Promise<void> {
    // The first part is read before anything is sent, so a store error still gets an answer.
    const first = await parts.next()
    const res = reply.raw
    reply.hijack()
    res.writeHead(status, { 'content-type': contentType, ...(reply.getHeaders() as Record<string, string>) })
    const flush: Flush = (text) =>
      new Promise((resolve, reject) => {
        res.write(text, (err) => (err ? reject(err) : resolve()))
      })
    try {
      if (!first.done) await flush(first.value)
      if (!first.done) await this.drain(parts, flush, () => res.destroyed)
      res.end()
    } catch (err) {
      if (err instanceof SlowReaderError) reply.log.info('reader too slow; response cut short')
      else reply.log.warn({ err }, 'response cut short')
      res.destroy()
    } finally {
      await parts.return(undefined)
    }
  }

  /** `send` for a job as JSON. */
  sendJob(reply: FastifyReply, status: number, view: JobView): Promise<void> {
    return this.send(reply, status, 'application/json; charset=utf-8', this.jobJson(view))
  }
}
