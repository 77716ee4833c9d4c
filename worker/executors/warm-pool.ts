import type { Logger } from 'pino'
import type { Metrics } from '../../core/metrics.js'

/** A runtime's pool bounds, from AIRLOCK_WARM_POOL. */
export interface PoolSize {
  min: number
  max: number
}

/** What the pool needs of a sandbox booted ahead of its job; the executor makes them. */
export interface WarmSandbox {
  readonly runtime: string
  /** When it finished booting (performance.now()). */
  readonly bootedAt: number
  /** How long its boot took. */
  readonly bootMs: number
  /** False once it has exited on its own: it is no use to a job. */
  alive(): boolean
  /** Host memory it holds now (its cgroup's charge). */
  memoryBytes(): Promise<number>
  /** Stops it and removes everything of it. */
  destroy(): Promise<void>
}

export interface WarmPoolOptions<S extends WarmSandbox> {
  sizes: ReadonlyMap<string, PoolSize>
  /** The idle sandboxes' memory together stays under this; the pool stops growing at it. */
  memoryBudgetBytes: number
  /** A sandbox idle longer than this is replaced by a fresh one. */
  maxIdleMs: number
  boot(runtime: string): Promise<S>
  /**
   * Whether a boot may start now; false while the host is busy with jobs, so that a
   * boot never competes with them for the CPU. Asked again at each refill and tick.
   * @default always
   */
  mayBoot?: () => boolean
  logger: Logger
  metrics?: Metrics
}

/** A pool's settings, as the executors take them (AIRLOCK_WARM_POOL and friends). */
export interface WarmPoolSettings {
  sizes: ReadonlyMap<string, PoolSize>
  memoryBudgetMb: number
  maxIdleMs: number
}

/** The pool an executor's settings ask for: none when no runtime may have a warm sandbox. */
export function createWarmPool<S extends WarmSandbox>(
  settings: WarmPoolSettings | undefined,
  hooks: Pick<WarmPoolOptions<S>, 'boot' | 'mayBoot' | 'logger' | 'metrics'>,
): WarmPool<S> | undefined {
  const sizes = new Map([...(settings?.sizes ?? [])].filter(([, size]) => size.max > 0))
  if (!settings || sizes.size === 0) return undefined
  return new WarmPool({
    ...hooks,
    sizes,
    memoryBudgetBytes: settings.memoryBudgetMb * 1024 * 1024,
    maxIdleMs: settings.maxIdleMs,
    logger: hooks.logger.child({ component: 'warm-pool' }),
  })
}

/** The window over which claims are counted to size the pool. */
export const DEMAND_WINDOW_MS = 30_000
/** A runtime whose boot failed is not tried again for this long, doubling to BOOT_BACKOFF_MAX_MS. */
const BOOT_BACKOFF_MS = 1000
const BOOT_BACKOFF_MAX_MS = 60_000
/** How often idle sandboxes are checked against the target and their age when nothing else happens. */
const TICK_MS = 1000

/**
 * How many idle sandboxes of a runtime to keep: the most claims seen within any one
 * second of the last DEMAND_WINDOW_MS, so a burst like the last one finds a sandbox
 * for each of its jobs, within [min, max]. As the window slides past the burst the
 * target falls back to min. `claimTimes` are performance.now() times, oldest first. Pure.
 */
export function poolTarget(size: PoolSize, claimTimes: readonly number[], now: number): number {
  const recent = claimTimes.filter((t) => now - t <= DEMAND_WINDOW_MS)
  let peak = 0
  for (let i = 0, j = 0; j < recent.length; j++) {
    while (recent[j]! - recent[i]! >= 1000) i++
    peak = Math.max(peak, j - i + 1)
  }
  return Math.min(size.max, Math.max(size.min, peak))
}

/**
 * One-use sandboxes booted ahead of demand, per runtime. A job takes one (a hit) or
 * finds none and starts cold (a miss); a taken sandbox is the job's alone and is never
 * given back. Boots run one at a time in the background and hold no job slot: a job
 * never waits for the pool, and the pool never runs more than one boot beside jobs.
 * A claimed sandbox is replaced once its job is over (refill) or at the next tick.
 */
export class WarmPool<S extends WarmSandbox> {
  private readonly idle = new Map<string, S[]>()
  private readonly booting = new Map<string, number>()
  private readonly claims = new Map<string, number[]>()
  private readonly memory = new Map<S, number>()
  /** Per runtime: when its next boot may be tried after a failure, and the current backoff. */
  private readonly backoff = new Map<string, { until: number; ms: number }>()
  private running = false
  /** Bumped by every flush: a boot started before one is not what the pool holds now, and is discarded. */
  private generation = 0
  private filling: Promise<void> | undefined
  private ticker: NodeJS.Timeout | undefined

  constructor(private readonly options: WarmPoolOptions<S>) {}

  get runtimes(): string[] {
    return [...this.options.sizes.keys()]
  }

  /** Starts filling; idempotent. */
  start(): void {
    if (this.running) return
    this.running = true
    this.ticker = setInterval(() => this.kick(), TICK_MS)
    this.ticker.unref()
    this.kick()
  }

  /** An idle sandbox of `runtime` for one job, or undefined (start cold). Counts a hit or a miss. */
  take(runtime: string): S | undefined {
    if (!this.options.sizes.has(runtime)) return undefined
    const now = performance.now()
    const times = this.claims.get(runtime) ?? []
    times.push(now)
    while (times.length > 0 && now - times[0]! > DEMAND_WINDOW_MS) times.shift()
    this.claims.set(runtime, times)
    let found: S | undefined
    const idle = this.idle.get(runtime) ?? []
    while (!found && idle.length > 0) {
      const s = idle.shift()!
      this.memory.delete(s)
      if (s.alive()) found = s
      else void this.discard(s)
    }
    this.options.metrics?.warmClaims.inc({ runtime, result: found ? 'hit' : 'miss' })
    this.report()
    return found
  }

  /**
   * Boots toward the targets now. The executor calls it when a job has ended; a claim
   * does not, so a replacement does not boot beside the job that took the sandbox, on
   * the CPU its start needs. The pool also looks every TICK_MS.
   */
  refill(): void {
    this.kick()
  }

  /**
   * Destroys every idle sandbox, and one booting now once it lands (say, when the
   * platform changed); the pool refills.
   */
  async flush(): Promise<void> {
    this.generation++
    const all = [...this.idle.values()].flat()
    this.idle.clear()
    this.memory.clear()
    this.report()
    await Promise.all(all.map((s) => this.discard(s)))
    this.kick()
  }

  /**
   * Stops filling and destroys what it holds (isolation cannot be guaranteed now, or
   * the worker stops); start() resumes. A boot in flight is discarded when it lands.
   */
  async pause(): Promise<void> {
    this.running = false
    clearInterval(this.ticker)
    await this.flush()
  }

  /** Stops for good, waiting for a boot in flight so that nothing outlives the pool. */
  async close(): Promise<void> {
    await this.pause()
    await this.filling
  }

  private kick(): void {
    if (!this.running || this.filling) return
    this.filling = this.fill()
      .catch((err: unknown) => this.options.logger.error({ err }, 'warm pool refill failed'))
      .finally(() => {
        this.filling = undefined
      })
  }

  /** Shrinks what is over its target or too old, then boots toward the targets, one at a time. */
  private async fill(): Promise<void> {
    while (this.running) {
      await this.shrink()
      if (this.options.mayBoot && !this.options.mayBoot()) return
      const runtime = this.neediest()
      if (runtime === undefined) return
      this.booting.set(runtime, (this.booting.get(runtime) ?? 0) + 1)
      this.report()
      const generation = this.generation
      try {
        const s = await this.options.boot(runtime)
        this.backoff.delete(runtime)
        const memory = await s.memoryBytes()
        // Checked after the last wait: a flush or close while the memory was read must not
        // find this sandbox idle afterwards (booted on the old platform, or never destroyed).
        if (!this.running || generation !== this.generation) {
          await this.discard(s)
          continue
        }
        this.memory.set(s, memory)
        this.idle.set(runtime, [...(this.idle.get(runtime) ?? []), s])
      } catch (err) {
        const ms = Math.min(BOOT_BACKOFF_MAX_MS, (this.backoff.get(runtime)?.ms ?? BOOT_BACKOFF_MS / 2) * 2)
        this.backoff.set(runtime, { until: performance.now() + ms, ms })
        this.options.logger.warn(
          { err: (err as Error).message, runtime, retryInMs: ms },
          'could not boot a warm sandbox; jobs of this runtime start cold meanwhile',
        )
      } finally {
        this.booting.set(runtime, (this.booting.get(runtime) ?? 1) - 1)
        this.report()
      }
    }
  }

  /** The runtime furthest below its target that may boot now (budget, backoff), if any. */
  private neediest(): string | undefined {
    const now = performance.now()
    const held = [...this.memory.values()].reduce((a, b) => a + b, 0)
    let best: string | undefined
    let bestGap = 0
    for (const [runtime, size] of this.options.sizes) {
      if ((this.backoff.get(runtime)?.until ?? 0) > now) continue
      const have = (this.idle.get(runtime)?.length ?? 0) + (this.booting.get(runtime) ?? 0)
      const gap = poolTarget(size, this.claims.get(runtime) ?? [], now) - have
      // The next one is expected to hold what the last of its runtime held.
      const expected = [...this.memory].find(([s]) => s.runtime === runtime)?.[1] ?? 0
      if (gap > bestGap && held + expected <= this.options.memoryBudgetBytes) {
        best = runtime
        bestGap = gap
      }
    }
    return best
  }

  private async shrink(): Promise<void> {
    const now = performance.now()
    const gone: S[] = []
    for (const [runtime, idle] of this.idle) {
      const target = poolTarget(this.options.sizes.get(runtime)!, this.claims.get(runtime) ?? [], now)
      // Oldest first: they are at the front.
      const keep = idle.filter(
        (s, i) => idle.length - i <= target && s.alive() && now - s.bootedAt <= this.options.maxIdleMs,
      )
      gone.push(...idle.filter((s) => !keep.includes(s)))
      this.idle.set(runtime, keep)
    }
    for (const s of gone) this.memory.delete(s)
    if (gone.length > 0) this.report()
    await Promise.all(gone.map((s) => this.discard(s)))
  }

  private async discard(s: S): Promise<void> {
    await s
      .destroy()
      .catch((err: unknown) => this.options.logger.warn({ err, runtime: s.runtime }, 'could not remove a warm sandbox'))
  }

  private report(): void {
    const m = this.options.metrics
    if (!m) return
    for (const runtime of this.options.sizes.keys()) {
      m.warmSandboxes.set({ runtime, state: 'idle' }, this.idle.get(runtime)?.length ?? 0)
      m.warmSandboxes.set({ runtime, state: 'booting' }, this.booting.get(runtime) ?? 0)
    }
    m.warmMemory.set([...this.memory.values()].reduce((a, b) => a + b, 0))
  }
}
