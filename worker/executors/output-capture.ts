import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'

/** The most a block of small pieces of output holds: they start at 4 KiB and grow with the output. */
const OUTPUT_BLOCK_BYTES = 64 * 1024

/**
 * Keeps the first `capBytes` of a stream and drains the rest, so a program that floods
 * its output neither blocks on a full pipe nor grows our memory.
 */
export class CappedOutput {
  /** Whole blocks, and the block being filled (`filling` bytes of it so far). */
  private readonly blocks: Buffer[] = []
  private block: Buffer | undefined
  private filling = 0
  private kept = 0
  truncated = false

  constructor(private readonly capBytes: number) {}

  /** Keeps what fits under the cap; returns the kept part (empty once the cap is reached). */
  push(chunk: Buffer): Buffer {
    const room = this.capBytes - this.kept
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true
      return chunk.subarray(0, 0)
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk
    if (part.length < chunk.length) this.truncated = true
    this.keep(part)
    this.kept += part.length
    return part
  }

  /**
   * Copies small pieces into blocks: a program writing a byte at a time is delivered a
   * byte a read, and each kept as it came was an object of its own until the job ended
   * (~130 bytes of heap per byte written, 7 million of them in 300 s; found by the
   * fifteenth review). A big piece that comes with no block being filled is kept as it is.
   */
  private keep(part: Buffer): void {
    if (part.length >= OUTPUT_BLOCK_BYTES && this.filling === 0) {
      this.blocks.push(part)
      return
    }
    let from = 0
    while (from < part.length) {
      const size = Math.max(4096, Math.min(OUTPUT_BLOCK_BYTES, this.kept + from))
      this.block ??= Buffer.allocUnsafe(Math.min(size, this.capBytes - this.kept - from))
      const copied = part.copy(this.block, this.filling, from)
      this.filling += copied
      from += copied
      if (this.filling === this.block.length) {
        this.blocks.push(this.block)
        this.block = undefined
        this.filling = 0
      }
    }
  }

  /** The kept bytes as text; a multi-byte character cut by the cap is dropped whole. */
  text(): string {
    const buf = Buffer.concat(this.block ? [...this.blocks, this.block.subarray(0, this.filling)] : this.blocks)
    return (this.truncated ? buf.subarray(0, utf8Boundary(buf)) : buf).toString('utf8')
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

/**
 * A sink for one stream's chunks: keeps them in `into` and passes each kept piece on
 * as text as it arrives (a multi-byte character split across chunks is passed on
 * whole, with the next one).
 */
export function keepAndPassOn(into: CappedOutput, onText?: (text: string) => void): (chunk: Buffer) => void {
  const decoder = new StringDecoder('utf8')
  return (chunk) => {
    const kept = into.push(chunk)
    if (onText && kept.length > 0) {
      const text = decoder.write(kept)
      if (text) onText(text)
    }
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
