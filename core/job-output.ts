import { StringDecoder } from 'node:string_decoder'
import type { Redis } from 'ioredis'
import type { OutputPlace } from './job-store.js'
import type { JobSpec } from './job-spec.js'
import { AirlockError } from './errors.js'
import type { RedisKeys } from './redis-keys.js'
import { defineJobScripts, runReadScript } from './job-lifecycle/scripts.js'

export type OutputStream = 'stdout' | 'stderr'

/** Reserves memory for one read; the hold is given back once what was read has left. */
export type TakeBudget = (bytes: number) => Promise<{ shrink(actualBytes: number): void; release(): void }>

/**
 * Reads a job's output in bounded pieces, wherever it is stored (once): its event
 * stream's log events, or keys of its own (the fallback when a live write failed).
 * A reader never holds a whole stream: each read is reserved with `take` before it is
 * made and given back when its pieces have all been taken by the consumer (which asks
 * for the next piece only once the last one has left), so a reader holds at most one
 * reservation, and never waits for one while holding another.
 */
export class JobOutputReader {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    defineJobScripts(redis)
  }

  /** Bytes of output one read gathers, at least (one more event can pass it). */
  static readonly READ_BYTES = 128 * 1024
  /** The most bytes one log event holds: the log batcher's 64 K characters, 3 bytes each at most. */
  static readonly EVENT_MAX_BYTES = 3 * 64 * 1024
  /** Entries one read looks at, at most. */
  private static readonly READ_ENTRIES = 2000
  /**
   * Most characters one piece holds. Output is read as bytes (a Buffer, outside the JS
   * heap) and handed on as small strings, so no piece is a large heap object that only
   * a full collection frees: memory under many readers follows what they hold.
   */
  static readonly PIECE_CHARS = 16 * 1024

  /** What one read may cost the process: its reply, and the text and JSON made of it. */
  static memoryOf(bytes: number): number {
    return 3 * bytes
  }

  /** A stream's output (or, with 'both', every log event's in order) as pieces of text. */
  async *pieces(
    jobId: string,
    place: OutputPlace,
    stream: OutputStream | 'both',
    take: TakeBudget,
  ): AsyncGenerator<string> {
    if (place === 'keys') {
      for (const s of stream === 'both' ? (['stdout', 'stderr'] as const) : [stream])
        yield* this.fromKey(this.keys.jobOutput(jobId, s), take)
    } else {
      yield* this.fromEvents(jobId, stream, take)
    }
  }

  private async *fromEvents(jobId: string, stream: OutputStream | 'both', take: TakeBudget): AsyncGenerator<string> {
    const key = this.keys.jobEvents(jobId)
    // A read's bytes are let go of with its hold: not kept, uncounted, while the next read
    // waits for budget (review 22 found NDJSON's reads kept so; 250 paused readers, 800 MB).
    let read: [last: Buffer, data: Buffer] | undefined
    for (let start = '-'; ; ) {
      const hold = await take(JobOutputReader.memoryOf(JobOutputReader.READ_BYTES + JobOutputReader.EVENT_MAX_BYTES))
      try {
        read = (await runReadScript(
          this.redis,
          'readOutput',
          [key],
          [start, stream, JobOutputReader.READ_BYTES, JobOutputReader.READ_ENTRIES],
          true,
        )) as [Buffer, Buffer]
        hold.shrink(JobOutputReader.memoryOf(read[1].length))
        yield* textPieces(read[1])
        if (read[0].length === 0) return
        start = `(${read[0].toString()}`
      } finally {
        read = undefined
        hold.release()
      }
    }
  }

  /**
   * An artifact's bytes as they are stored (binary), a read at a time, each held against
   * the budget until the next is asked for (once the last has left the process).
   */
  async *artifactBytes(jobId: string, index: number, take: TakeBudget): AsyncGenerator<Buffer> {
    const key = this.keys.jobArtifact(jobId, index)
    const size = JobOutputReader.READ_BYTES
    // As in fromEvents: a read's bytes go with its hold.
    let chunk: Buffer | undefined
    for (let at = 0; ; at += size) {
      const hold = await take(size)
      try {
        chunk = await this.redis.getrangeBuffer(key, at, at + size - 1)
        hold.shrink(chunk.length)
        if (chunk.length > 0) yield chunk
        if (chunk.length < size) return
      } finally {
        chunk = undefined
        hold.release()
      }
    }
  }

  /**
   * The job as it was accepted (its spec, limits resolved) as JSON, without what a worker
   * adds and without `env`, whose values are often secrets that the tenant's other keys
   * need not read back. A spec is a hash field, read whole: it is at most one request
   * body, held against the budget until it has left the process.
   */
  async *requestJson(jobId: string, take: TakeBudget): AsyncGenerator<string> {
    const key = this.keys.job(jobId)
    const hold = await take(JobOutputReader.memoryOf(await this.redis.hstrlen(key, 'spec')))
    try {
      const raw = await this.redis.hget(key, 'spec')
      // Expired between the caller's look-up and this read.
      if (raw === null) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${jobId} not found`)
      const { program: _worker, env: _secrets, ...spec } = JSON.parse(raw) as JobSpec
      yield JSON.stringify(spec)
    } finally {
      hold.release()
    }
  }

  private async *fromKey(key: string, take: TakeBudget): AsyncGenerator<string> {
    // Byte ranges can cut a character; the decoder carries it to the next piece.
    const decoder = new StringDecoder('utf8')
    const size = JobOutputReader.READ_BYTES
    // As in fromEvents: a read's bytes go with its hold.
    let chunk: Buffer | undefined
    for (let at = 0; ; at += size) {
      const hold = await take(JobOutputReader.memoryOf(size))
      try {
        chunk = await this.redis.getrangeBuffer(key, at, at + size - 1)
        hold.shrink(JobOutputReader.memoryOf(chunk.length))
        if (chunk.length > 0) yield* textPieces(chunk, decoder)
        if (chunk.length < size) break
      } finally {
        chunk = undefined
        hold.release()
      }
    }
    const rest = decoder.end()
    if (rest) yield rest
  }
}

/**
 * UTF-8 bytes as strings of at most PIECE_CHARS characters; a character cut at a
 * slice's end is carried over (by `carry`, across calls, when one is passed).
 */
function* textPieces(bytes: Buffer, carry?: StringDecoder): Generator<string> {
  const decoder = carry ?? new StringDecoder('utf8')
  for (let at = 0; at < bytes.length; at += JobOutputReader.PIECE_CHARS) {
    const text = decoder.write(bytes.subarray(at, at + JobOutputReader.PIECE_CHARS))
    if (text) yield text
  }
  if (!carry) {
    const rest = decoder.end()
    if (rest) yield rest
  }
}
