import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import WebSocket from 'ws'
import { removeCgroup } from '../worker/executors/local/cgroup-host.js'
import { dropRedisPrefix, freePort, rssMb } from './local-process.js'

export interface SoakOptions {
  seconds: number
  ratePerSecond: number
  log?: (line: string) => void
  /** p99 bounds; generous defaults for a 2-core machine shared with the client. */
  maxSubmitP99Ms?: number
  maxEndToEndP99Ms?: number
}

export interface SoakResult {
  summary: Record<string, unknown>
  failures: string[]
}

// Built, this file is dist/bench/; run from source (the tests), it is bench/.
const SERVER =
  [new URL('../bin/airlock-server.js', import.meta.url), new URL('../dist/bin/airlock-server.js', import.meta.url)]
    .map((u) => u.pathname)
    .find((p) => existsSync(p)) ?? 'dist/bin/airlock-server.js'

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN
}

function start(role: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [SERVER, `--role=${role}`], {
    env: { ...process.env, AIRLOCK_LOG_LEVEL: 'warn', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

/** Average of the middle and of the last third of the samples: the growth after warm-up. */
function growth(samples: number[]): { earlyMb: number; lateMb: number } {
  const third = Math.max(1, Math.floor(samples.length / 3))
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
  return { earlyMb: avg(samples.slice(third, 2 * third)), lateMb: avg(samples.slice(-third)) }
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? (() => undefined)
  const port = await freePort()
  const key = `soak-${Math.random().toString(36).slice(2)}-key`
  const prefix = `soak-${port}`
  const env = {
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    AIRLOCK_REDIS_PREFIX: prefix,
    AIRLOCK_API_KEYS: `soak:${key}`,
    AIRLOCK_STATE_DIR: `/run/airlock-soak-${port}`,
    AIRLOCK_CGROUP_PARENT: `airlock-soak-${port}`,
    AIRLOCK_METRICS_PORT: '0',
  }
  const api = start('api', { ...env, PORT: String(port) })
  const worker = start('worker', env)
  const url = `http://127.0.0.1:${port}`
  const errors: string[] = []
  const submitMs: number[] = []
  const endToEndMs: number[] = []
  const apiRss: number[] = []
  const workerRss: number[] = []
  try {
    for (let i = 0; ; i++) {
      const ready = await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
      if (ready) break
      if (i > 300) throw new Error('Airlock did not become ready')
      await new Promise((r) => setTimeout(r, 100))
    }
    const sampler = setInterval(() => {
      apiRss.push(rssMb(api.pid!))
      workerRss.push(rssMb(worker.pid!))
    }, 1000)
    const inflight: Promise<void>[] = []
    const deadline = Date.now() + options.seconds * 1000
    let submitted = 0
    while (Date.now() < deadline) {
      const t0 = Date.now()
      submitted++
      inflight.push(
        (async () => {
          const res = await fetch(`${url}/v1/jobs`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ runtime: 'bash', source: 'for i in 1 2 3; do echo line $i; done' }),
            signal: AbortSignal.timeout(30_000),
          })
          submitMs.push(Date.now() - t0)
          if (res.status !== 202) {
            errors.push(`submit: HTTP ${res.status}`)
            return
          }
          const { id } = (await res.json()) as { id: string }
          // A subscriber per job, following it to the end.
          const result = await new Promise<{ code: number; lines: number; status?: string }>((resolve) => {
            const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/jobs/${id}/stream`, {
              headers: { authorization: `Bearer ${key}` },
            })
            let lines = 0
            let status: string | undefined
            ws.on('message', (raw) => {
              const e = JSON.parse(raw.toString()) as { type: string; data?: string; job?: { status: string } }
              if (e.type === 'log') lines += (e.data ?? '').split('\n').filter(Boolean).length
              if (e.type === 'end') status = e.job?.status
            })
            ws.on('close', (code) => resolve({ code, lines, ...(status ? { status } : {}) }))
            ws.on('error', () => resolve({ code: -1, lines }))
          })
          endToEndMs.push(Date.now() - t0)
          if (result.code !== 1000 || result.status !== 'succeeded' || result.lines !== 3)
            errors.push(`job ${id}: close ${result.code}, status ${result.status}, ${result.lines} lines`)
        })().catch((err: unknown) => {
          errors.push(`client: ${(err as Error).message}`)
        }),
      )
      const wait = t0 + 1000 / options.ratePerSecond - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      if (submitted % Math.max(1, Math.round(options.ratePerSecond * 10)) === 0)
        log(
          `${submitted} jobs submitted, ${errors.length} errors, API ${apiRss.at(-1)?.toFixed(0)} MiB, worker ${workerRss.at(-1)?.toFixed(0)} MiB`,
        )
    }
    await Promise.all(inflight)
    clearInterval(sampler)

    const apiGrowth = growth(apiRss)
    const workerGrowth = growth(workerRss)
    const summary = {
      seconds: options.seconds,
      jobs: submitted,
      errors: errors.length,
      submitP50Ms: percentile(submitMs, 50),
      submitP99Ms: percentile(submitMs, 99),
      endToEndP50Ms: percentile(endToEndMs, 50),
      endToEndP99Ms: percentile(endToEndMs, 99),
      apiRssMb: { ...apiGrowth, max: Math.max(...apiRss) },
      workerRssMb: { ...workerGrowth, max: Math.max(...workerRss) },
    }
    const failures: string[] = []
    if (errors.length) failures.push(`${errors.length} errors, first: ${errors.slice(0, 3).join('; ')}`)
    if (summary.submitP99Ms > (options.maxSubmitP99Ms ?? 1000)) failures.push(`submit p99 ${summary.submitP99Ms} ms`)
    if (summary.endToEndP99Ms > (options.maxEndToEndP99Ms ?? 15_000))
      failures.push(`end-to-end p99 ${summary.endToEndP99Ms} ms`)
    // Flat memory: what grows after warm-up must stay within noise.
    for (const [name, g] of [
      ['API', apiGrowth],
      ['worker', workerGrowth],
    ] as const) {
      if (g.lateMb - g.earlyMb > Math.max(25, g.earlyMb * 0.25))
        failures.push(`${name} memory grew from ${g.earlyMb.toFixed(0)} to ${g.lateMb.toFixed(0)} MiB`)
    }
    return { summary, failures }
  } finally {
    api.kill('SIGTERM')
    worker.kill('SIGTERM')
    await Promise.all([api, worker].map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))))
    // This run's own parent cgroup and state directory, empty once its worker is gone.
    await removeCgroup(env.AIRLOCK_CGROUP_PARENT).catch((err: unknown) =>
      log(`could not remove cgroup ${env.AIRLOCK_CGROUP_PARENT}: ${(err as Error).message}`),
    )
    await rm(env.AIRLOCK_STATE_DIR, { recursive: true, force: true })
    await dropRedisPrefix(env.REDIS_URL, prefix)
  }
}
