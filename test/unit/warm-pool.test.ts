import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import t from 'tap'
import { Metrics } from '../../core/metrics.js'
import { DEMAND_WINDOW_MS, poolTarget, WarmPool, type WarmSandbox } from '../../worker/executors/warm-pool.js'

// The pool's sizing and bookkeeping, with stand-in sandboxes: what a sandbox is (a real
// runsc one) is tested in test/e2e/warm-pool.test.ts; here only what the pool decides.

t.test('the target is the busiest second of the last window, within min and max', async (t) => {
  const now = 1_000_000
  t.equal(poolTarget({ min: 1, max: 8 }, [], now), 1, 'no demand: min')
  t.equal(poolTarget({ min: 0, max: 8 }, [now - 500], now), 1, 'one claim: one')
  t.equal(
    poolTarget({ min: 1, max: 8 }, [now - 5000, now - 4900, now - 4800, now - 100], now),
    3,
    'three within one second',
  )
  t.equal(
    poolTarget({ min: 1, max: 8 }, [now - 3000, now - 2000, now - 1000, now], now),
    1,
    'one a second is one at a time',
  )
  t.equal(poolTarget({ min: 1, max: 2 }, [now - 30, now - 20, now - 10, now], now), 2, 'never above max')
  t.equal(
    poolTarget(
      { min: 1, max: 8 },
      [now - DEMAND_WINDOW_MS - 10, now - DEMAND_WINDOW_MS - 5, now - DEMAND_WINDOW_MS - 1],
      now,
    ),
    1,
    'a burst past the window no longer counts',
  )
})

class StandIn implements WarmSandbox {
  static booted = 0
  readonly bootedAt = performance.now()
  readonly bootMs = 1
  destroyed = false
  dead = false
  constructor(
    readonly runtime: string,
    private readonly bytes = 10,
  ) {
    StandIn.booted++
  }
  alive(): boolean {
    return !this.dead && !this.destroyed
  }
  async memoryBytes(): Promise<number> {
    return this.bytes
  }
  async destroy(): Promise<void> {
    this.destroyed = true
  }
}

async function until(what: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  while (!what() && performance.now() < deadline) await sleep(10)
  return what()
}

function pool(
  t: { teardown(fn: () => unknown): void },
  options: Partial<ConstructorParameters<typeof WarmPool<StandIn>>[0]> = {},
) {
  const made: StandIn[] = []
  const metrics = new Metrics()
  const p = new WarmPool<StandIn>({
    sizes: new Map([['bash', { min: 2, max: 4 }]]),
    memoryBudgetBytes: 1000,
    maxIdleMs: 60_000,
    boot: async (runtime) => {
      const s = new StandIn(runtime)
      made.push(s)
      return s
    },
    logger: pino({ level: 'silent' }),
    metrics,
    ...options,
  })
  t.teardown(() => p.close())
  return { p, made, metrics }
}

async function metric(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name)
  return (m?.values as { labels: Record<string, string>; value: number }[] | undefined)?.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  )?.value
}

t.test('the pool fills to min once started, and a claim takes an idle sandbox for good', async (t) => {
  const { p, made, metrics } = pool(t)
  t.equal(p.take('bash'), undefined, 'nothing before start: a miss')
  p.start()
  t.ok(await until(() => made.length === 2), 'booted min sandboxes')
  const s = p.take('bash')
  t.equal(s, made[0], 'the oldest idle one')
  t.notOk(s!.destroyed, 'handed over, not destroyed: it is the job’s now')
  t.equal(p.take('python'), undefined, 'a runtime without a pool never hits')
  t.equal(await metric(metrics, 'airlock_warm_claims_total', { runtime: 'bash', result: 'hit' }), 1)
  t.equal(await metric(metrics, 'airlock_warm_claims_total', { runtime: 'bash', result: 'miss' }), 1)
  p.refill()
  t.ok(await until(() => made.length === 3), 'replaced once the job is over')
  t.equal(await metric(metrics, 'airlock_warm_sandboxes', { runtime: 'bash', state: 'idle' }), 2)
  t.equal(await metric(metrics, 'airlock_warm_sandbox_memory_bytes', {}), 20, 'idle memory is measured and shown')
  await p.close()
  t.ok(
    made.filter((m) => m !== s).every((m) => m.destroyed),
    'close destroys every idle sandbox',
  )
})

t.test('a burst of claims grows the pool toward max, and a dead sandbox is never handed out', async (t) => {
  const { p, made } = pool(t)
  p.start()
  await until(() => made.length === 2)
  made[0]!.dead = true
  const first = p.take('bash')
  t.equal(first, made[1], 'the dead one is skipped')
  t.ok(made[0]!.destroyed, '...and removed')
  t.equal(p.take('bash'), undefined, 'the burst outran the pool: a miss')
  t.equal(p.take('bash'), undefined)
  p.refill()
  t.ok(
    await until(() => made.length === 5),
    `three claims in one second: the pool grows to three idle (booted ${made.length})`,
  )
  await sleep(50)
  t.equal(made.length, 5, 'and no further')
  for (let i = 0; i < 5; i++) p.take('bash')
  p.refill()
  t.ok(await until(() => made.length === 9), `eight claims in one second: four idle, the max (booted ${made.length})`)
  await sleep(50)
  t.equal(made.length, 9, 'and never above max')
})

t.test('the memory budget stops growth; a failed boot backs off without spinning', async (t) => {
  let boots = 0
  const { p, made } = pool(t, {
    memoryBudgetBytes: 25,
    boot: async (runtime) => {
      boots++
      const s = new StandIn(runtime)
      made.push(s)
      return s
    },
  })
  p.start()
  await until(() => made.length >= 2)
  p.take('bash')
  p.take('bash')
  p.take('bash')
  p.refill()
  await sleep(100)
  t.ok(made.length <= 5, `idle memory within 25 bytes: at most 2 of 10 idle beside the 3 taken (booted ${made.length})`)

  let failures = 0
  const failing = pool(t, {
    boot: async () => {
      failures++
      throw new Error('no runsc')
    },
  })
  failing.p.start()
  await sleep(300)
  t.equal(failures, 1, 'one failed boot, then a pause before the next try')
  t.equal(failing.p.take('bash'), undefined, 'jobs start cold meanwhile')
  t.ok(boots > 0)
})

t.test('a sandbox idle past maxIdleMs is replaced by a fresh one', async (t) => {
  const { p, made } = pool(t, { maxIdleMs: 50, sizes: new Map([['bash', { min: 1, max: 1 }]]) })
  p.start()
  await until(() => made.length === 1)
  t.ok(await until(() => made.length >= 2, 3000), 'a fresh one booted at the next tick')
  t.ok(made[0]!.destroyed, 'the old one is gone')
})

t.test('no boot starts while the host says it is busy with jobs; the pool fills once it is not', async (t) => {
  let busy = true
  const { p, made } = pool(t, { mayBoot: () => !busy })
  p.start()
  await sleep(300)
  t.equal(made.length, 0, 'held back while busy')
  busy = false
  p.refill()
  t.ok(await until(() => made.length === 2), 'filled to min once not')
})
