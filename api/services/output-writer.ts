import { AsyncLocalStorage } from 'node:async_hooks'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply } from 'fastify'
import {
  EVENT_MAX_DATA_BYTES,
  EVENT_READ_BYTES,
  EVENT_READ_ENTRIES,
  type JobEventReader,
  type StoredEvent,
} from '../../core/job-events.js'
import { droppedByClient } from '../../core/errors.js'
import type { Artifact } from '../../core/artifacts.js'
import type { JobOutputReader, TakeBudget } from '../../core/job-output.js'
import type { JobHead, JobStore, JobView } from '../../core/job-store.js'
import type { BudgetHold, OutputBudget } from './output-budget.js'

/** Writes text or bytes out of the process; resolves once they have left (flushed to the socket). */
export type Flush = (chunk: string | Buffer) => Promise<void>

/** A write's wait ended by its connection's close: a client's doing (droppedByClient). */
const connectionClosed = () =>
  Object.assign(new Error('the connection closed during a write'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })

/** A reader left a piece unread past the slow-reader limit. */
export class SlowReaderError extends Error {
  constructor() {
    super('the reader did not take its output in time')
    this.name = 'SlowReaderError'
  }
}

/** What a piece of `chars` characters costs the process on its way out (string, JSON copy, bytes). */
export function pieceMemoryBytes(chars: number): number {
  return chars * 8
}

/**
 * What a record's JSON of `chars` characters costs on its way out: the stored string,
 * what it parses to, the JSON made of it and the socket's copy.
 */
function headMemoryBytes(chars: number): number {
  return chars * 6
}

/** Characters of a record's JSON beyond its details, at most (the head: ids, times, isolation). */
const HEAD_CHARS = 16 * 1024

/** A request's turn among its tenant's (api/plugins/auth.ts): taken again after it is left. */
export interface Turn {
  takeTurn(): Promise<void>
  leaveTurn(): void
}

/** For a reader that is no request of a tenant's (a stream's end message): no turns to take. */
const NO_TURNS: Turn = { takeTurn: async () => undefined, leaveTurn: () => undefined }

/**
 * Everything the API sends that carries job output (a job, its log, a stream's `end`
 * message) goes out through here: read from Redis a bounded piece at a time, each read
 * held against the process's output budget (for the job's tenant) from before it is
 * made until its pieces have left the process. Nothing here ever holds a whole stream.
 */
export class OutputWriter {
  constructor(
    /** Where a job's step results are read, under the budget. */
    private readonly store: JobStore,
    private readonly output: JobOutputReader,
    private readonly events: JobEventReader,
    private readonly budget: OutputBudget,
    /** How long one piece may take to leave before its reader counts as stuck and is cut. */
    private readonly slowReaderMs: number,
  ) {}

  /** The turn of the answer whose piece is being read (set by `send` and `drain` around each read). */
  private readonly reading = new AsyncLocalStorage<Turn>()

  /**
   * A hold on the budget for a read, taken in the reader's turn. The two are always taken
   * in this order, and a reader holds at most one hold, given back before it asks for the
   * next: so a turn is only ever waited for with no budget held, and those holding turns
   * never wait on those waiting for them. (Taken the other way round, 100 readers of one
   * job sat in their tenant's 16 turns waiting for budget that readers queued for a turn
   * held: the test of many readers ran past its 170 s.)
   */
  private hold(tenant: string, bytes: number, patient: boolean): Promise<BudgetHold> {
    return this.inTurn(() => this.budget.take(tenant, bytes, patient))
  }

  /**
   * The budget for one response's reads. Only its first read may give up (503
   * AIRLOCK_ERR_OUTPUT_BUSY, before anything is sent), and not even that one when
   * `patient`; later ones wait their turn, which always comes: every hold is given back
   * within the slow-reader limit.
   */
  private take(tenant: string, patientFromStart = false): TakeBudget {
    let first = !patientFromStart
    return (bytes) => {
      const patient = !first
      first = false
      return this.hold(tenant, bytes, patient)
    }
  }

  /**
   * The job as JSON (the shape of JobSchema), its stdout and stderr read in pieces. The
   * record's step results (test cases' previews, compile output: up to a few MB) are
   * read only once the budget holds what they will cost, until the record has left, and
   * the first hold is the only one
   * that may give up: a busy budget is a 503 before anything is sent, never a body cut
   * short after the record.
   */
  async *jobJson(job: JobHead, patient = false): AsyncGenerator<string> {
    const take = this.take(job.tenant, patient)
    // Held before the step results are read: their size is known from the head.
    const hold = await take(headMemoryBytes(job.detailChars + HEAD_CHARS))
    // The record (its step results: MBs) lives in headJson's frame only, and its JSON only
    // until it has left: neither is kept, uncounted, while the output's reads wait for budget.
    let head: string | undefined
    try {
      head = await this.headJson(job)
      yield head
    } finally {
      head = undefined
      hold.release()
    }
    for await (const piece of this.output.pieces(job.id, job.output, 'stdout', take))
      yield JSON.stringify(piece).slice(1, -1)
    yield '","stderr":"'
    for await (const piece of this.output.pieces(job.id, job.output, 'stderr', take))
      yield JSON.stringify(piece).slice(1, -1)
    yield '"}'
  }

  /** The job's JSON up to its stdout's opening quote. */
  private async headJson(job: JobHead): Promise<string> {
    const view = await this.store.withDetails(job)
    return `${JSON.stringify(view.job).slice(0, -1)},"stdout":"`
  }

  /** The stream's `end` message: `{type:"end",job,seq,ts}`. */
  async *endMessage(view: JobHead, seq: number, ts: string): AsyncGenerator<string> {
    yield '{"type":"end","job":'
    // Patient: the stream has sent its events; a busy budget can no longer be its answer.
    yield* this.jobJson(view, true)
    yield `,"seq":${seq},"ts":${JSON.stringify(ts)}}`
  }

  /** Every log event's text, in order (`GET /logs` as text). */
  logText(view: JobHead): AsyncGenerator<string> {
    return this.output.pieces(view.id, view.output, 'both', this.take(view.tenant))
  }

  /** Every event as a line of JSON; the `end` line carries the job (`GET /logs` as NDJSON). */
  async *ndjson(view: JobHead): AsyncGenerator<string> {
    // Only the first read may give up (a 503 before anything is sent): the rest wait their turn.
    for (let cursor = 0, patient = false; ; patient = true) {
      // A read of many small events is one round trip and one write (10,000 events of a
      // byte each were 2,500 reads and 10,000 writes: 650 ms of the event loop).
      const hold = await this.hold(view.tenant, NDJSON_READ_MEMORY_BYTES, patient)
      // Nothing of a read outlives its hold: a reader waiting for its next one (behind its
      // tenant's turns or the budget) kept its last read's events and lines alive, uncounted:
      // 250 paused readers of a job of control characters took 800 MB against a 32 MB
      // budget (found by review 22).
      let read: NdjsonRead | undefined
      let lines: string | undefined
      try {
        read = ndjsonRead(await this.events.within(view.id, cursor))
        if (!read) return
        hold.shrink(read.memoryBytes)
        cursor = read.cursor
        const { end } = read
        lines = read.lines
        read = undefined
        if (lines) yield lines
        lines = undefined
        if (end) {
          hold.release()
          yield `{"type":"end","seq":${end.seq},"ts":${JSON.stringify(end.ts)},"job":`
          yield* this.jobJson(view, true)
          yield '}\n'
          return
        }
      } finally {
        hold.release()
      }
    }
  }

  /**
   * Pulls `parts` one at a time, asking for the next only once `flush` says the last
   * left the process (which is what lets a read's reservation be given back), and cuts
   * a reader that does not take a piece within the slow-reader limit. A read takes
   * `turn` (a request's turn among its tenant's) with its budget (see `hold`), and the
   * turn is left once the piece is read: no turn is held while the client takes it.
   */
  async drain<T extends string | Buffer>(
    parts: AsyncGenerator<T>,
    flush: (chunk: T) => Promise<void>,
    isClosed: () => boolean = () => false,
    turn: Turn = NO_TURNS,
    /** A piece already read (`send`'s first), sent first; taken out of the box. */
    box: T[] = [],
  ): Promise<void> {
    try {
      // Each piece is let go of once it has left the process: not kept while the next read
      // waits for its turn and budget, uncounted by the budget (found by review 22). It is
      // read into a box in a frame of its own and taken out by `flushNext`, so no frame
      // that waits on the next read holds it.
      for (;;) {
        if (isClosed()) return
        if (box.length === 0) {
          try {
            if (!(await this.readInto(box, parts, turn))) return
          } finally {
            turn.leaveTurn()
          }
        }
        await this.flushNext(box, flush)
      }
    } finally {
      // However it ends (a slow reader cut, a closed socket), the reader's last
      // reservation is given back now, not whenever the generator is collected.
      await parts.return(undefined)
    }
  }

  /** Reads the next piece into `box`; false when there are no more. */
  private async readInto<T>(box: T[], parts: AsyncGenerator<T>, turn: Turn): Promise<boolean> {
    const next = await this.reading.run(turn, () => parts.next())
    if (next.done) return false
    box.push(next.value)
    return true
  }

  /** Sends the piece in `box`, taken out of it first. */
  private flushNext<T extends string | Buffer>(box: T[], flush: (chunk: T) => Promise<void>): Promise<void> {
    return this.flushInTime(flush, box.pop()!)
  }

  /**
   * `read` in the turn of the answer being sent: a hold on the budget (`hold`), or a read
   * that is not of output (a list's next job, between its pieces). Whoever calls it holds
   * no budget, so it may wait for a turn.
   */
  async inTurn<T>(read: () => Promise<T>): Promise<T> {
    await (this.reading.getStore() ?? NO_TURNS).takeTurn()
    return read()
  }

  /** A reader that does not take a piece in time gives its budget back to the others. */
  private async flushInTime<T extends string | Buffer>(flush: (chunk: T) => Promise<void>, text: T): Promise<void> {
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
   * Answers with a body of `parts`, written straight to the socket so that each piece
   * is known to have left before the next is read. An error before the head is written
   * is the caller's to answer (the error handler's 503 for a busy budget or a Redis
   * failure); after it, the connection is cut (the client sees a truncated body, never
   * a wrong one).
   */
  async send(
    reply: FastifyReply,
    status: number,
    contentType: string,
    parts: AsyncGenerator<string | Buffer>,
    headers: Record<string, string> = {},
  ): Promise<void> {
    const { request } = reply
    const res = reply.raw
    // A pipelined request's answer can leave only after those before it on its connection
    // have: until then it holds neither its turn nor any budget, which they may need to
    // finish (found by the eighth review: their reads waited on budget held by answers
    // queued behind them, until the slow-reader limit cut the connection).
    if (!res.socket) {
      request.leaveTurn()
      if (!(await ownsConnection(res, request.raw.socket))) {
        await parts.return(undefined)
        reply.hijack()
        res.destroy()
        return
      }
    }
    // The first piece, in a box `drain` empties: held in this frame it stayed (V8 keeps a
    // suspended frame's values) until the answer's end, uncounted; 130 NDJSON answers kept
    // 92 MB of first pieces so (found by review 24).
    let first: (string | Buffer)[]
    try {
      await request.takeTurn()
      first = []
      await this.readInto(first, parts, request)
    } catch (err) {
      await parts.return(undefined)
      throw err
    }
    // Each later read takes a turn of the tenant's again (see `hold`; a list's jobs, read
    // between pieces, take theirs too), and no turn is held while the client takes a piece
    // (found by the seventh review: Judge0's lists read their 100 jobs outside any turn).
    request.leaveTurn()
    // A write to a connection its client has reset may never call back (the socket is
    // destroyed before the answer knows): its close ends the wait, not the slow-reader
    // limit, which held the answer's budget 10 s for each reset (found by a code review).
    const flush: Flush = (text) =>
      new Promise((resolve, reject) => {
        const closed = () => reject(connectionClosed())
        if (res.destroyed || !res.socket || res.socket.destroyed) return closed()
        res.once('close', closed)
        res.write(text, (err) => {
          res.off('close', closed)
          if (err) reject(err)
          else resolve()
        })
      })
    // From here the first piece's hold is given back only by `parts.return`: in the finally.
    try {
      reply.hijack()
      // `headers` are the body's own: an error before the first byte is answered without them.
      res.writeHead(status, {
        'content-type': contentType,
        ...(reply.getHeaders() as Record<string, string>),
        ...headers,
      })
      // A HEAD answer has no body: the rest is not read (it would cost what a GET costs).
      if (first.length > 0 && reply.request.method !== 'HEAD')
        await this.drain(parts, flush, () => res.destroyed, request, first)
      res.end()
    } catch (err) {
      if (err instanceof SlowReaderError) reply.log.info('reader too slow; response cut short')
      else if (droppedByClient(err))
        reply.log.info({ code: (err as { code: string }).code }, 'connection closed; response cut short')
      else reply.log.warn({ err }, 'response cut short')
      res.destroy()
    } finally {
      await parts.return(undefined)
    }
  }

  /**
   * The job with its step results, for an API that answers in its own shape (the Judge0
   * and Piston adapters), read under the budget as jobJson reads them: a busy budget is a
   * 503 before anything is sent (`patient`: it waits its turn instead, for an answer
   * already begun). `keep` says which test cases the answer uses; the rest
   * are let go before the hold is given back, so what a waiting answer keeps is small.
   */
  async details(
    job: JobHead,
    keep: (tests: JobView['job']['tests']) => JobView['job']['tests'],
    patient = false,
  ): Promise<JobView> {
    const hold = await this.hold(job.tenant, headMemoryBytes(job.detailChars + HEAD_CHARS), patient)
    try {
      const view = await this.store.withDetails(job)
      return { ...view, job: { ...view.job, tests: keep(view.job.tests) } }
    } finally {
      hold.release()
    }
  }

  /**
   * One of a job's streams as text, in pieces read under the budget: for an API that
   * sends output in its own shape (the Judge0 and Piston adapters), inside an answer
   * already begun (after `details`), so it waits its turn rather than give up. Each
   * piece is held until the next is asked for, so hand each on before asking.
   */
  text(view: JobHead, stream: 'stdout' | 'stderr' | 'both'): AsyncGenerator<string> {
    return this.output.pieces(view.id, view.output, stream, this.take(view.tenant, true))
  }

  /**
   * The job's artifact at `path` (its place in the list, and its entry), or undefined; the
   * list (up to ~280 KB of JSON for long paths) is read and searched under the budget, so
   * many readers of a job with a long list wait their turn instead of each holding it.
   */
  async findArtifact(view: JobHead, path: string): Promise<{ index: number; artifact: Artifact } | undefined> {
    if (view.artifactChars === 0) return undefined
    const hold = await this.hold(view.tenant, headMemoryBytes(view.artifactChars), false)
    try {
      const list = await this.store.artifacts(view)
      const index = list.findIndex((a) => a.path === path)
      return index < 0 ? undefined : { index, artifact: list[index]! }
    } finally {
      hold.release()
    }
  }

  /** An artifact's bytes, as they were left. */
  artifact(view: JobHead, index: number): AsyncGenerator<Buffer> {
    return this.output.artifactBytes(view.id, index, this.take(view.tenant))
  }

  /** `send` for the job as it was submitted (GET /v1/jobs/:id/request). */
  sendRequest(reply: FastifyReply, view: JobHead): Promise<void> {
    return this.send(
      reply,
      200,
      'application/json; charset=utf-8',
      this.output.requestJson(view.id, this.take(view.tenant)),
    )
  }

  /**
   * `send` for a job as JSON. `patient` for the answer to a submission that waited for
   * its job: the job has run, so a 503 (which says nothing was taken, retry) would have
   * the client run it again; that answer waits its turn instead.
   */
  sendJob(reply: FastifyReply, status: number, view: JobHead, patient = false): Promise<void> {
    return this.send(reply, status, 'application/json; charset=utf-8', this.jobJson(view, patient))
  }
}

/**
 * What a read of events costs on its way out as NDJSON: the events' data (a character of
 * at most 2 bytes each) and their lines, the string (2 bytes a character at most) and the
 * socket's copy (3 bytes of UTF-8 at most). A line is up to 6 characters for each of the
 * data's (JSON escapes a control character as `\u0001`), and 256 for an event's fields.
 */
export function ndjsonMemoryBytes(dataChars: number, lineChars: number, events: number): number {
  return 2 * dataChars + 5 * lineChars + 256 * events
}

/** What any one read of events may cost as NDJSON: taken before the read, then shrunk to what it did cost. */
const NDJSON_READ_MEMORY_BYTES = ndjsonMemoryBytes(
  EVENT_READ_BYTES + EVENT_MAX_DATA_BYTES,
  6 * (EVENT_READ_BYTES + EVENT_MAX_DATA_BYTES) + 256 * EVENT_READ_ENTRIES,
  EVENT_READ_ENTRIES,
)

/** A read of events as NDJSON: the lines of those before an `end`, the `end`, and where the next read starts. */
interface NdjsonRead {
  lines: string
  end: StoredEvent | undefined
  cursor: number
  memoryBytes: number
}

/** A read's events as NDJSON lines; undefined for none. Its own function, so the events are not kept by the generator's frame. Pure. */
function ndjsonRead(batch: readonly StoredEvent[]): NdjsonRead | undefined {
  if (batch.length === 0) return undefined
  const at = batch.findIndex((e) => e.type === 'end')
  const lines = (at < 0 ? batch : batch.slice(0, at)).map((e) => `${JSON.stringify(e)}\n`).join('')
  let dataChars = 0
  for (const e of batch) if (e.type === 'log') dataChars += e.data.length
  return {
    lines,
    end: at < 0 ? undefined : batch[at],
    cursor: batch[batch.length - 1]!.seq,
    memoryBytes: ndjsonMemoryBytes(dataChars, lines.length, batch.length),
  }
}

/**
 * For an answer that does not own its connection yet (a pipelined request's waits for those
 * before it): true once it does, false if the connection closes first.
 */
function ownsConnection(res: ServerResponse, connection: Socket): Promise<boolean> {
  if (connection.destroyed) return Promise.resolve(false)
  return new Promise((resolve) => {
    const done = () => {
      res.off('socket', done)
      connection.off('close', done)
      resolve(res.socket !== null)
    }
    res.once('socket', done)
    connection.once('close', done)
  })
}
