import { AirlockError, clientLeft } from '../../core/errors.js'

/**
 * The bytes of job output one API process holds at once, for every reader together:
 * a reader takes a batch's bytes before it reads the batch from Redis and gives them
 * back once the batch has left the process. A reader holds at most one hold at a time
 * and gives it back before it asks for the next, so readers can never wait on each
 * other in a circle, and every hold is given back within the slow-reader limit. No
 * tenant may hold more than `tenantShare` of the budget, so one tenant's stalled
 * readers cannot starve the others; a reader that is not `patient` (one that has sent
 * nothing yet) and waits longer than `waitMs` gets AIRLOCK_ERR_OUTPUT_BUSY. The process's memory under N readers of a
 * big
 * job is bounded by this setting, not by N.
 */
export class OutputBudget {
  private used = 0
  private readonly byTenant = new Map<string, number>()
  private readonly waiting: Waiter[] = []
  private readonly tenantCapacity: number

  constructor(
    readonly capacityBytes: number,
    readonly waitMs = 30_000,
    tenantShare = 0.5,
    /** What a reader that waited `waitMs` in vain is told. */
    private readonly busy: () => Error = () =>
      new AirlockError(
        'AIRLOCK_ERR_OUTPUT_BUSY',
        'the server is sending as much job output as it may hold; retry shortly',
      ),
    private readonly options: BudgetOptions = {},
  ) {
    this.tenantCapacity = Math.max(1, Math.floor(capacityBytes * tenantShare))
  }

  get inUse(): number {
    return this.used
  }

  /** What `tenant` holds now. */
  heldBy(tenant: string): number {
    return this.byTenant.get(tenant) ?? 0
  }

  /**
   * Waits for `bytes` (at most one tenant's share) for `tenant`; the hold gives them back.
   * A wait whose `signal` aborts (its caller has gone), or has already, ends at once,
   * refused with `left`, and holds no place.
   */
  async take(tenant: string, bytes: number, patient = false, signal?: AbortSignal): Promise<BudgetHold> {
    if (signal?.aborted) throw left()
    let held = Math.min(Math.max(0, Math.ceil(bytes)), this.tenantCapacity)
    if ((this.waiting.length > 0 && !this.options.firstFit) || !this.fits(tenant, held)) {
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = { tenant, bytes: held, resolve, timer: undefined }
        const giveUp = (why: Error) => {
          const at = this.waiting.indexOf(waiter)
          if (at < 0) return
          this.waiting.splice(at, 1)
          clearTimeout(waiter.timer)
          signal?.removeEventListener('abort', abort)
          reject(why)
          this.wake()
        }
        const abort = () => giveUp(left())
        if (!patient) waiter.timer = setTimeout(() => giveUp(this.busy()), this.waitMs)
        signal?.addEventListener('abort', abort, { once: true })
        this.waiting.push(waiter)
        // A waiter of a tenant under its share may go ahead of one whose tenant is at it.
        this.wake()
        if (this.waiting.includes(waiter) && this.heldBy(tenant) + held <= this.tenantCapacity)
          this.options.onShort?.(tenant, held, {
            waits: () => this.waiting.includes(waiter),
            first: () => {
              const at = this.waiting.indexOf(waiter)
              if (at > 0) this.waiting.unshift(...this.waiting.splice(at, 1))
            },
          })
      })
    } else {
      this.add(tenant, held)
    }
    return {
      shrink: (actual) => {
        const to = Math.max(0, Math.ceil(actual))
        if (to >= held) return
        this.add(tenant, to - held)
        held = to
        this.wake()
      },
      release: () => {
        if (held === 0) return
        this.add(tenant, -held)
        held = 0
        this.wake()
      },
    }
  }

  private fits(tenant: string, bytes: number): boolean {
    return this.used + bytes <= this.capacityBytes && (this.byTenant.get(tenant) ?? 0) + bytes <= this.tenantCapacity
  }

  private add(tenant: string, bytes: number): void {
    this.used += bytes
    const n = (this.byTenant.get(tenant) ?? 0) + bytes
    if (n <= 0) this.byTenant.delete(tenant)
    else this.byTenant.set(tenant, n)
  }

  private wake(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!
      if (this.used + w.bytes > this.capacityBytes) {
        if (!this.options.firstFit) return
        i++
        continue
      }
      if (!this.fits(w.tenant, w.bytes)) {
        i++
        continue
      }
      this.waiting.splice(i, 1)
      clearTimeout(w.timer)
      this.add(w.tenant, w.bytes)
      w.resolve()
    }
  }
}

export interface BudgetOptions {
  /**
   * A waiter that fits goes ahead of those before it that do not (else they wait in
   * order: a big one at the head holds back the small ones behind it until it fits or
   * gives up; the ninth review's header-only bodies held other tenants' 8 KB bodies at
   * the head of the line for seconds).
   */
  firstFit?: boolean
  /**
   * Told when `tenant` has to wait for `bytes` that its share has room for: the budget
   * as a whole is short.
   */
  onShort?: (tenant: string, bytes: number, waiter: ShortWaiter) => void
}

/** A waiter the budget is short for. */
export interface ShortWaiter {
  /** Whether it still waits (not yet given its room, timed out or gone). */
  waits(): boolean
  /** Puts it first in line: room given back next goes to it if it fits. */
  first(): void
}

/** Why a wait ended whose caller had gone: nobody hears it, so it is neither a bound nor logged. */
const left = () => clientLeft('while it waited')

interface Waiter {
  tenant: string
  bytes: number
  resolve: () => void
  timer: NodeJS.Timeout | undefined
}

export interface BudgetHold {
  /** Gives back what a read did not need (it read less than it reserved). */
  shrink(actualBytes: number): void
  /** Gives back the rest; calling it again does nothing. */
  release(): void
}
