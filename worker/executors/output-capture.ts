import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'

/** The most bytes of text one byte of output is kept as: U+FFFD, for a byte that is not UTF-8. */
export const MAX_TEXT_BYTES_PER_BYTE = 3

/** The most characters a block of small pieces of output holds before they are joined into one string. */
const OUTPUT_BLOCK_CHARS = 64 * 1024

/**
 * Keeps the first `capBytes` of a stream, as the text it is stored and served as, and
 * drains the rest, so a program that floods its output neither blocks on a full pipe
 * nor grows our memory. The cap counts the text's UTF-8 bytes, not the bytes the program
 * wrote: each byte that is not UTF-8 is kept as U+FFFD, three bytes, and counting what was
 * written let a job store three times its cap (review 18). What `push` returns is what is
 * kept, piece by piece, so the live log and the stored output are the same text. A
 * character left incomplete at the very end of the stream is dropped.
 */
export class CappedOutput {
  private readonly decoder = new StringDecoder('utf8')
  /** Whole blocks, and the small pieces not yet joined into one. */
  private readonly blocks: string[] = []
  private pieces: string[] = []
  private piecesChars = 0
  /** UTF-8 bytes of the kept text. */
  private kept = 0
  private full = false
  truncated = false

  constructor(private readonly capBytes: number) {}

  /** Keeps what fits under the cap; returns the kept text ('' once the cap is reached). */
  push(chunk: Buffer): string {
    if (chunk.length === 0) return ''
    if (this.full) {
      this.truncated = true
      return ''
    }
    let text = this.decoder.write(chunk)
    let bytes = Buffer.byteLength(text, 'utf8')
    if (bytes > this.capBytes - this.kept) {
      const fits = Buffer.from(text, 'utf8').subarray(0, this.capBytes - this.kept)
      const whole = fits.subarray(0, utf8Boundary(fits))
      text = whole.toString('utf8')
      bytes = whole.length
      this.full = this.truncated = true
    }
    this.kept += bytes
    if (this.kept >= this.capBytes) this.full = true
    if (text) this.keep(text)
    return text
  }

  /**
   * Joins small pieces into blocks: a program writing a byte at a time is delivered a
   * byte a read, and each kept as it came was an object of its own until the job ended
   * (~130 bytes of heap per byte written, 7 million of them in 300 s; found by the
   * fifteenth review). A big piece that comes with no small ones waiting is kept as it is.
   */
  private keep(text: string): void {
    if (text.length >= OUTPUT_BLOCK_CHARS && this.pieces.length === 0) {
      this.blocks.push(text)
      return
    }
    this.pieces.push(text)
    this.piecesChars += text.length
    if (this.piecesChars >= OUTPUT_BLOCK_CHARS) {
      this.blocks.push(this.pieces.join(''))
      this.pieces = []
      this.piecesChars = 0
    }
  }

  /** The kept text. */
  text(): string {
    return this.blocks.join('') + this.pieces.join('')
  }
}

/** Length of `buf` without a trailing incomplete UTF-8 sequence. */
export function utf8Boundary(buf: Buffer): number {
  let i = buf.length - 1
  let back = 0
  // Walk back over continuation bytes (10xxxxxx) to the lead byte, at most 3.
  while (i >= 0 && back < 3 && (buf[i]! & 0xc0) === 0x80) {
    i--
    back++
  }
  if (i < 0) return buf.length
  const lead = buf[i]!
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
  return need > back + 1 ? i : buf.length
}

/** A sink for one stream's chunks: keeps them in `into` and passes each kept piece on as text as it arrives. */
export function keepAndPassOn(into: CappedOutput, onText?: (text: string) => void): (chunk: Buffer) => void {
  return (chunk) => {
    const text = into.push(chunk)
    if (onText && text) onText(text)
  }
}

/** Reads `stream` into `into`, passing kept output on as it arrives (keepAndPassOn). */
export function collect(stream: Readable, into: CappedOutput, onText?: (text: string) => void): Promise<void> {
  const sink = keepAndPassOn(into, onText)
  return new Promise((resolve) => {
    stream.on('data', sink)
    stream.once('end', resolve)
    stream.once('close', resolve)
    stream.once('error', () => resolve())
  })
}
