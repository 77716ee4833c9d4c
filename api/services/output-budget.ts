/**
 * The bytes of job output one API process holds at once, for every reader together:
 * a reader takes its piece's bytes before reading it and gives them back once the
 * piece is written to the socket. Readers past the budget wait their turn (first come,
 * first served), so the process's memory under N readers of a big job is bounded by
 * this setting, not by N.
 */
export class OutputBudget {
  private used = 0
  private readonly waiting: { bytes: number; resolve: () => void }[] = []

  constructor(readonly capacityBytes: number) {}

  get inUse(): number {
    return this.used
  }

  /** Waits for `bytes` (at most the whole budget); the hold gives them back. */
  async take(bytes: number): Promise<BudgetHold> {
    let held = Math.min(Math.max(0, Math.ceil(bytes)), this.capacityBytes)
    if (this.waiting.length > 0 || this.used + held > this.capacityBytes) {
      await new Promise<void>((resolve) => this.waiting.push({ bytes: held, resolve }))
    } else {
      this.used += held
    }
    return {
      shrink: (actual) => {
        const to = Math.max(0, Math.ceil(actual))
        if (to >= held) return
        this.used -= held - to
        held = to
        this.wake()
      },
      release: () => {
        this.used -= held
        held = 0
        this.wake()
      },
    }
  }

  private wake(): void {
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.capacityBytes) {
      const next = this.waiting.shift()!
      this.used += next.bytes
      next.resolve()
    }
  }
}

export interface BudgetHold {
  /** Gives back what a read did not need (it read less than it reserved). */
  shrink(actualBytes: number): void
  /** Gives back the rest; calling it again does nothing. */
  release(): void
}
