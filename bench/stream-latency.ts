/**
 * Live-log benchmark (prints numbers; not a test):
 *  1. latency from a line written inside the sandbox to its arrival at a WebSocket
 *     client (p50, p90, p99, max);
 *  2. how many concurrent subscribers of one job one API process serves, and what
 *     each costs it in memory.
 * It starts Airlock itself (one all-in-one process on a loopback port, its own Redis
 * prefix) unless AIRLOCK_URL and AIRLOCK_API_KEY point at a running one.
 *
 *   npm run bench:stream [-- --lines 100 --subscribers 100,500,1000,2000]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '100' },
    'interval-ms': { type: 'string', default: '50' },
    subscribers: { type: 'string', default: '100,500,1000,2000' },
  },
})
const LINES = Number(values.lines)
const INTERVAL_MS = Number(values['interval-ms'])
const SUBSCRIBER_STEPS = values.subscribers.split(',').map(Number)

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function summary(values: number[]): string {
  const s = [...values].sort((a, b) => a - b)
  return `p50 ${percentile(s, 50).toFixed(1)} ms, p90 ${percentile(s, 90).toFixed(1)} ms, p99 ${percentile(s, 99).toFixed(1)} ms, max ${s[s.length - 1]?.toFixed(1)} ms (n=${s.length})`
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

async function startAirlock(): Promise<{ url: string; key: string; child: ChildProcess | undefined }> {
  if (process.env.AIRLOCK_URL && process.env.AIRLOCK_API_KEY)
    return { url: process.env.AIRLOCK_URL, key: process.env.AIRLOCK_API_KEY, child: undefined }
  const port = await freePort()
  const key = `bench-${Math.random().toString(36).slice(2)}-key`
  const child = spawn(process.execPath, [new URL('../bin/airlock-server.js', import.meta.url).pathname], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      AIRLOCK_API_KEYS: `bench:${key}`,
      AIRLOCK_REDIS_PREFIX: `bench-${port}`,
      AIRLOCK_LOG_LEVEL: 'warn',
      AIRLOCK_METRICS_PORT: '0',
      // Thousands of subscribers from one address and one tenant are this bench's point;
      // the per-tenant and per-address caps that refuse them in service are lifted here.
      AIRLOCK_MAX_STREAMS_PER_TENANT: '100000',
      AIRLOCK_MAX_STREAMS_PER_ADDRESS: '100000',
      AIRLOCK_MAX_CONNECTIONS_PER_ADDRESS: '100000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 200; i++) {
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ready) return { url, key, child }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('Airlock did not become ready')
}

async function submit(url: string, key: string, source: string, timeoutMs: number): Promise<string> {
  const res = await fetch(`${url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ runtime: 'python', source, limits: { timeoutMs } }),
  })
  if (res.status !== 202) throw new Error(`submit: HTTP ${res.status} ${await res.text()}`)
  return ((await res.json()) as { id: string }).id
}

// Each line carries the wall-clock time it was written inside the sandbox (gVisor's
// clock follows the host's).
const emitter = (lines: number, intervalMs: number) =>
  `import time\nfor i in range(${lines}):\n    print(f"{i} {time.time() * 1000:.3f}", flush=True)\n    time.sleep(${intervalMs / 1000})`

interface Subscriber {
  latencies: number[]
  lines: number
  closed: Promise<number>
}

function subscribe(url: string, key: string, id: string): Subscriber {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/jobs/${id}/stream`, {
    headers: { authorization: `Bearer ${key}` },
  })
  const sub: Subscriber = { latencies: [], lines: 0, closed: Promise.resolve(0) }
  sub.closed = new Promise((resolve) => {
    ws.on('message', (raw) => {
      const e = JSON.parse(raw.toString()) as { type: string; data?: string }
      if (e.type !== 'log' || !e.data) return
      const now = Date.now()
      for (const line of e.data.trim().split('\n')) {
        const written = Number(line.split(' ')[1])
        if (Number.isFinite(written)) {
          sub.latencies.push(now - written)
          sub.lines++
        }
      }
    })
    ws.on('close', (code) => resolve(code))
    ws.on('error', () => resolve(-1))
  })
  return sub
}

async function main(): Promise<void> {
  const { url, key, child } = await startAirlock()
  try {
    console.log(`Airlock at ${url}; ${LINES} lines, one every ${INTERVAL_MS} ms\n`)

    const id = await submit(url, key, emitter(LINES, INTERVAL_MS), 120_000)
    const one = subscribe(url, key, id)
    await one.closed
    console.log(`sandbox line -> WebSocket client latency, one subscriber: ${summary(one.latencies)}`)

    console.log('\nconcurrent subscribers of one job on one API process:')
    console.log('subscribers  all lines  closed ok  latency                                              API RSS')
    for (const n of SUBSCRIBER_STEPS) {
      const before = child?.pid ? rssMb(child.pid) : NaN
      const job = await submit(
        url,
        key,
        `import time\ntime.sleep(3)\n${emitter(20, 200).split('\n').slice(1).join('\n')}`,
        120_000,
      )
      const subs = Array.from({ length: n }, () => subscribe(url, key, job))
      let peak = before
      const sampler = setInterval(() => {
        if (child?.pid) peak = Math.max(peak, rssMb(child.pid))
      }, 100)
      const codes = await Promise.all(subs.map((s) => s.closed))
      clearInterval(sampler)
      const complete = subs.filter((s) => s.lines === 20).length
      const ok = codes.filter((c) => c === 1000).length
      const rss = Number.isFinite(before)
        ? `${before.toFixed(0)} -> peak ${peak.toFixed(0)} MiB (${(((peak - before) * 1024) / n).toFixed(1)} KiB/subscriber)`
        : 'n/a (external server)'
      console.log(
        `${String(n).padStart(11)}  ${String(complete).padStart(9)}  ${String(ok).padStart(9)}  ${summary(subs.flatMap((s) => s.latencies)).padEnd(52)} ${rss}`,
      )
    }
  } finally {
    child?.kill('SIGTERM')
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
