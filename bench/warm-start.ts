/**
 * Warm-start benchmark (prints numbers; not a test). In one run on this machine:
 *  1. a cold sandbox outside the service: the local executor running the job directly
 *     (bundle, cgroup, `runsc run`, output capture; no API, no queue, no pool);
 *  2. the same job through the service, submit to result (`?wait=true`), one at a time,
 *     GAP ms apart (the pool refills between) and back to back (on two cores a boot
 *     then competes with the next job), with the default warm pool and with none
 *     (AIRLOCK_WARM_POOL=none);
 *  3. sustained: JOBS jobs kept at the worker's concurrency, with the default pool and
 *     with none: hit rate and end-to-end p50/p99.
 * It starts Airlock itself (an all-in-one process on a loopback port, a Redis prefix,
 * state directory and cgroup parent of its own) for each service configuration.
 *
 *   node dist/bench/warm-start.js [--runs 40] [--jobs 200] [--runtimes bash,python] [--gap-ms 300]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig, SETTINGS } from '../core/config.js'
import { resolveJobSpec } from '../core/job-spec.js'
import { createLogger } from '../core/logger.js'
import { createExecutor } from '../worker/executors/create-executor.js'
import { removeCgroup } from '../worker/executors/local/cgroup-host.js'
import { freePort } from './local-process.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '40' },
    jobs: { type: 'string', default: '200' },
    runtimes: { type: 'string', default: 'bash,python' },
    /** Pause between one-at-a-time jobs, as between an interactive user's runs: the pool refills in it. */
    'gap-ms': { type: 'string', default: '300' },
  },
})
const GAP_MS = Number(values['gap-ms'])
const RUNS = Number(values.runs)
const JOBS = Number(values.jobs)
const RUNTIMES = values.runtimes.split(',')
const SOURCE: Record<string, string> = { bash: 'echo hi', python: 'print("hi")', node: 'console.log("hi")' }

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN
}

function line(label: string, ms: number[], extra = ''): string {
  const f = (v: number) => v.toFixed(0).padStart(5)
  return `${label.padEnd(56)} p50 ${f(pct(ms, 50))}  p90 ${f(pct(ms, 90))}  p99 ${f(pct(ms, 99))}  (n=${ms.length})${extra}`
}

/** The executor alone, cold, as a worker with no pool would run the job. */
async function direct(runtime: string): Promise<number[]> {
  const tag = `airlock-bench-warm-${process.pid}`
  const config = loadConfig({ ...process.env, AIRLOCK_STATE_DIR: `/run/${tag}`, AIRLOCK_CGROUP_PARENT: tag })
  const executor = createExecutor(config, createLogger('silent'), { warm: false })
  try {
    const report = await executor.checkIsolation()
    if (!report.ok) throw new Error(`the local executor cannot isolate here: ${report.reason}`)
    const spec = resolveJobSpec({ runtime, source: SOURCE[runtime]! }, config)
    const ms: number[] = []
    for (let i = 0; i < RUNS + 2; i++) {
      const t0 = performance.now()
      const out = await executor.run({
        jobId: `bench_${process.pid}_${i}`,
        tenant: 'bench',
        spec,
        signal: new AbortController().signal,
      })
      const took = performance.now() - t0
      await executor.forget?.(`bench_${process.pid}_${i}`)
      if (out.status !== 'succeeded')
        throw new Error(`direct ${runtime} job ended ${out.status}: ${out.reason ?? out.stderr}`)
      if (i >= 2) ms.push(took)
    }
    return ms
  } finally {
    await executor.close()
    await removeCgroup(config.cgroupParent).catch(() => undefined)
    await rm(config.stateDir, { recursive: true, force: true })
  }
}

interface Service {
  url: string
  key: string
  child: ChildProcess
  stop(): Promise<void>
}

async function startAirlock(pool: string): Promise<Service> {
  const port = await freePort()
  const key = `bench-${Math.random().toString(36).slice(2)}-key`
  const tag = `airlock-bench-warm-${port}`
  const child = spawn(process.execPath, [new URL('../bin/airlock-server.js', import.meta.url).pathname], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      AIRLOCK_API_KEYS: `bench:${key}`,
      AIRLOCK_REDIS_PREFIX: tag,
      AIRLOCK_LOG_LEVEL: 'warn',
      AIRLOCK_METRICS_PORT: '0',
      AIRLOCK_STATE_DIR: `/run/${tag}`,
      AIRLOCK_CGROUP_PARENT: tag,
      AIRLOCK_WARM_POOL: pool,
      // One tenant drives the whole worker here; the fair-share caps would hold it back.
      AIRLOCK_DEFAULT_SUBMITS_PER_SECOND: '0',
      AIRLOCK_DEFAULT_MAX_RUNNING: '0',
      AIRLOCK_DEFAULT_MAX_QUEUED: '0',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  for (
    let i = 0;
    i < 300 &&
    !(await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    ));
    i++
  )
    await sleep(100)
  return {
    url,
    key,
    child,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
      await removeCgroup(tag).catch(() => undefined)
      await rm(`/run/${tag}`, { recursive: true, force: true })
    },
  }
}

interface Result {
  e2eMs: number
  warm: boolean
}

async function submit(s: Service, runtime: string): Promise<Result> {
  const t0 = performance.now()
  const res = await fetch(`${s.url}/v1/jobs?wait=true`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ runtime, source: SOURCE[runtime] }),
  })
  const job = (await res.json()) as { status: string; sandboxStart: string | null; reason: string | null }
  const e2eMs = performance.now() - t0
  if (job.status !== 'succeeded') throw new Error(`job ended ${job.status}: ${job.reason}`)
  return { e2eMs, warm: job.sandboxStart === 'warm' }
}

/** Waits until the service's pool has had time to fill (its sandboxes boot one at a time). */
async function settle(s: Service, runtime: string): Promise<void> {
  for (let i = 0; i < 3; i++) await submit(s, runtime)
  await sleep(3000)
}

async function sequential(s: Service, runtime: string, gapMs: number): Promise<Result[]> {
  await settle(s, runtime)
  const out: Result[] = []
  for (let i = 0; i < RUNS; i++) {
    out.push(await submit(s, runtime))
    await sleep(gapMs)
  }
  return out
}

async function sustained(s: Service, concurrency: number): Promise<Result[]> {
  for (const r of RUNTIMES) await settle(s, r)
  const out: Result[] = []
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < JOBS) {
        const i = next++
        out.push(await submit(s, RUNTIMES[i % RUNTIMES.length]!))
      }
    }),
  )
  return out
}

const hits = (r: Result[]) => ` warm ${r.filter((x) => x.warm).length}/${r.length}`

async function main(): Promise<void> {
  console.log(
    `warm-start bench, ${new Date().toISOString()}; trivial jobs (${RUNTIMES.map((r) => `${r}: ${SOURCE[r]}`).join('; ')}); ms`,
  )
  for (const runtime of RUNTIMES) console.log(line(`${runtime}: cold sandbox, executor alone`, await direct(runtime)))
  const configs: [string, string][] = [
    ['default warm pool', SETTINGS.warmPool.default],
    ['no pool', 'none'],
  ]
  for (const [name, pool] of configs) {
    const s = await startAirlock(pool)
    try {
      for (const runtime of RUNTIMES) {
        for (const gap of [GAP_MS, 0]) {
          const r = await sequential(s, runtime, gap)
          console.log(
            line(
              `${runtime}: service, ${gap > 0 ? `${gap} ms apart` : 'back to back'}, ${name}`,
              r.map((x) => x.e2eMs),
              hits(r),
            ),
          )
        }
      }
    } finally {
      await s.stop()
    }
  }
  const concurrency = loadConfig(process.env).workerConcurrency
  for (const [name, pool] of configs) {
    const s = await startAirlock(pool)
    try {
      const r = await sustained(s, concurrency)
      console.log(
        line(
          `sustained: ${JOBS} jobs at concurrency ${concurrency}, ${name}`,
          r.map((x) => x.e2eMs),
          `${hits(r)} (hit rate ${((100 * r.filter((x) => x.warm).length) / r.length).toFixed(0)}%)`,
        ),
      )
    } finally {
      await s.stop()
    }
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
