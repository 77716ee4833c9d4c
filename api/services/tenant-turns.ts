/** Leaves a turn; calling it again does nothing. */
export type LeaveTurn = () => void

export const NO_TURN: LeaveTurn = () => undefined

/**
 * Each tenant's requests take turns on this process: at most `perTenant` of them are
 * worked on at once, the rest wait in the order they came (before their body is read).
 * Node works on whatever is ready, so a tenant with 200 requests in flight had 200
 * answers' worth of work ahead of another tenant's one: one tenant's flood of cheap reads
 * made everyone else's requests take seconds. With turns, another tenant's request waits
 * behind at most `perTenant` of each other tenant's. A turn is left once the answer is on
 * its way (what streams after is bounded by the output budget) or before a request waits
 * for its job to end; waiting requests hold only their connection, which the connection
 * caps bound. 0 turns this off.
 */
export class TenantTurns {
  private readonly active = new Map<string, number>()
  private readonly waiting = new Map<string, (() => void)[]>()

  constructor(private readonly perTenant: number) {}

  /** Resolves once it is one of the tenant's `perTenant` requests; with how to leave. */
  async enter(tenant: string): Promise<LeaveTurn> {
    if (this.perTenant === 0) return NO_TURN
    const active = this.active.get(tenant) ?? 0
    if (active < this.perTenant) this.active.set(tenant, active + 1)
    else
      await new Promise<void>((resolve) => {
        const queue = this.waiting.get(tenant) ?? []
        queue.push(resolve)
        this.waiting.set(tenant, queue)
      })
    let left = false
    return () => {
      if (left) return
      left = true
      this.leave(tenant)
    }
  }

  /** The tenant's requests being worked on. */
  activeFor(tenant: string): number {
    return this.active.get(tenant) ?? 0
  }

  /** The tenant's requests waiting for a turn. */
  waitingFor(tenant: string): number {
    return this.waiting.get(tenant)?.length ?? 0
  }

  private leave(tenant: string): void {
    const queue = this.waiting.get(tenant)
    const next = queue?.shift()
    if (queue?.length === 0) this.waiting.delete(tenant)
    // The turn passes straight to the next in line: the tenant's count stays as it is.
    if (next) {
      next()
      return
    }
    const active = (this.active.get(tenant) ?? 1) - 1
    if (active > 0) this.active.set(tenant, active)
    else this.active.delete(tenant)
  }
}
