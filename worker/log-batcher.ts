import type { StepKind } from '../core/test-cases.js'

/**
 * Collects a job's output pieces and hands them on in order, merged into fewer, larger
 * pieces: a program that writes a byte at a time must not cost a Redis write per byte.
 * A piece waits at most `delayMs`, so live logs stay live.
 */
export interface LogPiece {
  stream: 'stdout' | 'stderr'
  data: string
}

/** A mark between pieces (a step of the job starting), written after everything pushed before it. */
export interface LogMark {
  step: StepKind
  index: number
}

export class LogBatcher {
  private pending: LogPiece[] = []
  private pendingChars = 0
  private timer: NodeJS.Timeout | undefined
  private chain: Promise<void> = Promise.resolve()

  constructor(
    private readonly write: (piece: LogPiece | LogMark) => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
    private readonly delayMs = 20,
    private readonly maxChars = 64 * 1024,
  ) {}

  push(stream: LogPiece['stream'], data: string): void {
    const last = this.pending[this.pending.length - 1]
    if (last && last.stream === stream) last.data += data
    else this.pending.push({ stream, data })
    this.pendingChars += data.length
    if (this.pendingChars >= this.maxChars) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), this.delayMs)
  }

  mark(mark: LogMark): void {
    this.flush()
    this.queue(mark)
  }

  private queue(item: LogPiece | LogMark): void {
    this.chain = this.chain
      .then(() => this.write(item))
      .then(
        () => undefined,
        (err: unknown) => this.onError(err),
      )
  }

  private flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const pieces = this.pending
    this.pending = []
    this.pendingChars = 0
    for (const piece of pieces) this.queue(piece)
  }

  /** Writes what is pending and resolves once every piece has been written. */
  async close(): Promise<void> {
    this.flush()
    await this.chain
  }
}
