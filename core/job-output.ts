import { StringDecoder } from 'node:string_decoder'
import type { Redis } from 'ioredis'
import type { OutputPlace } from './job-store.js'
import type { RedisKeys } from './redis-keys.js'

export type OutputStream = 'stdout' | 'stderr'

/**
 * Reads a job's output in bounded pieces, wherever it is stored (once): its event
 * stream's log events, or keys of its own (the fallback when a live write failed).
 * A reader never holds a whole stream, so N readers of a 20 MB job cost N pieces, not
 * N copies; `pieceBytes` bounds one piece.
 */
export class JobOutputReader {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** Events read from Redis at once. */
  private static readonly EVENTS_PER_READ = 4
  /** Bytes of a key read at once. */
  private static readonly KEY_READ_BYTES = 64 * 1024
  /**
   * Most characters one piece holds. Output is read as bytes (Buffers, outside the JS
   * heap) and handed on as small strings, so no piece is a large heap object that only
   * a full collection frees: memory under many readers follows what they hold, not GC.
   */
  static readonly PIECE_CHARS = 16 * 1024

  /** Most characters one piece holds (PIECE_CHARS). */
  get pieceChars(): number {
    return JobOutputReader.PIECE_CHARS
  }

  /** A stream's output (or, with 'both', every log event's in order) as pieces of text. */
  async *pieces(jobId: string, place: OutputPlace, stream: OutputStream | 'both'): AsyncGenerator<string> {
    if (place === 'keys') {
      for (const s of stream === 'both' ? (['stdout', 'stderr'] as const) : [stream]) yield* this.fromKey(this.keys.jobOutput(jobId, s))
    } else {
      yield* this.fromEvents(jobId, stream)
    }
  }

  private async *fromEvents(jobId: string, stream: OutputStream | 'both'): AsyncGenerator<string> {
    const key = this.keys.jobEvents(jobId)
    let start = '-'
    for (;;) {
      const entries = await this.redis.xrangeBuffer(key, start, '+', 'COUNT', JobOutputReader.EVENTS_PER_READ)
      if (entries.length === 0) return
      for (const [, fields] of entries) {
        let type = ''
        let s = ''
        let data: Buffer | undefined
        for (let i = 0; i + 1 < fields.length; i += 2) {
          const name = fields[i]!.toString()
          if (name === 'type') type = fields[i + 1]!.toString()
          else if (name === 'stream') s = fields[i + 1]!.toString()
          else if (name === 'data') data = fields[i + 1]
        }
        if (type === 'log' && data && data.length > 0 && (stream === 'both' || (s === 'stderr' ? 'stderr' : 'stdout') === stream)) yield* textPieces(data)
      }
      start = `(${entries[entries.length - 1]![0].toString()}`
      if (entries.length < JobOutputReader.EVENTS_PER_READ) return
    }
  }

  private async *fromKey(key: string): AsyncGenerator<string> {
    // Byte ranges can cut a character; the decoder carries it to the next piece.
    const decoder = new StringDecoder('utf8')
    const size = JobOutputReader.KEY_READ_BYTES
    for (let at = 0; ; at += size) {
      const chunk = await this.redis.getrangeBuffer(key, at, at + size - 1)
      if (chunk.length > 0) yield* textPieces(chunk, decoder)
      if (chunk.length < size) break
    }
    const rest = decoder.end()
    if (rest) yield rest
  }

  /** A stream's whole text; for callers that need it in memory and bound it themselves. */
  async text(jobId: string, place: OutputPlace, stream: OutputStream): Promise<string> {
    let out = ''
    for await (const piece of this.pieces(jobId, place, stream)) out += piece
    return out
  }
}

/**
 * UTF-8 bytes as strings of at most PIECE_CHARS characters; a character cut at a
 * slice's end is carried over (by `decoder`, across calls when one is passed).
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
