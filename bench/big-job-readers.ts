/**
 * Many readers of one big job: an all-in-one Airlock process (API + worker + local
 * gVisor executor) runs one job that writes `--mib` MiB on stdout and on stderr; then
 * `--readers` clients GET the job and its log at once, and `--stalled` WebSocket
 * clients open its stream from a far seq and never read. Prints the process's peak
 * RSS, what the job added to Redis, and whether every reader got the whole job.
 * Loopback only.
 *
 *   node dist/bench/big-job-readers.js --mib 10 --readers 100 --stalled 60
 *   node dist/bench/big-job-readers.js --server /path/to/other/dist/bin/airlock-server.js
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { removeCgroup } from '../worker/executors/local/cgroup-host.js'
import { dropRedisPrefix, freePort, rssMb } from './local-process.js'

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '10' },
    readers: { type: 'string', default: '100' },
    stalled: { type: 'string', default: '60' },
    server: { type: 'string' },
    'hold-seconds': { type: 'string', default: '15' },
    /** The server's heap cap (--max-old-space-size), as a memory-limited container has one; none by default. */
    'heap-mb': { type: 'string' },
  },
})

const SERVER =
  values.server ??
  [new URL('../bin/airlock-server.js', import.meta.url), new URL('../dist/bin/airlock-server.js', import.meta.url)]
    .map((u) => u.pathname)
    .find((p) => existsSync(p) && p.endsWith('.js')) ??
  'dist/bin/airlock-server.js'

const mib = Number(values.mib)
const readers = Number(values.readers)
const stalled = Number(values.stalled)

/** A WebSocket upgrade that is never read from after the handshake is sent. */
function stalledStream(port: number, path: string, key: string): () => void {
  const socket = connect(port, '127.0.0.1', () => {
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.from(Math.random().toString()).toString('base64').slice(0, 22)}==\r\nAuthorization: Bearer ${key}\r\n\r\n`,
    )
    socket.pause()
  })
  socket.on('error', () => undefined)
  return () => socket.destroy()
}

const port = await freePort()
const key = `readers-${Math.random().toString(36).slice(2)}-key`
const prefix = `readers-${port}`
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
// A test runner's loaders and coverage (NODE_OPTIONS, NODE_V8_COVERAGE) would be
// measured with the server; they stay out.
const { NODE_OPTIONS: _loaders, NODE_V8_COVERAGE: _coverage, ...inherited } = process.env
const env = {
  ...inherited,
  REDIS_URL: redisUrl,
  AIRLOCK_REDIS_PREFIX: prefix,
  AIRLOCK_API_KEYS: `readers:${key}`,
  AIRLOCK_STATE_DIR: `/run/airlock-readers-${port}`,
  AIRLOCK_CGROUP_PARENT: `airlock-readers-${port}`,
  AIRLOCK_METRICS_PORT: '0',
  AIRLOCK_LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  PORT: String(port),
}
const heap = values['heap-mb'] === undefined ? [] : [`--max-old-space-size=${Number(values['heap-mb'])}`]
const child = spawn(process.execPath, [...heap, SERVER, '--role=all'], { env, stdio: ['ignore', 'ignore', 'inherit'] })
const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
const url = `http://127.0.0.1:${port}`
const redis = new Redis(redisUrl)
const auth = { authorization: `Bearer ${key}` }
let peakMb = 0
const sampler = setInterval(() => {
  peakMb = Math.max(peakMb, rssMb(child.pid!) || 0)
}, 50)
const closers: (() => void)[] = []
try {
  for (let i = 0; ; i++) {
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break
    if (i > 300) throw new Error('Airlock did not become ready')
    await new Promise((r) => setTimeout(r, 100))
  }
  const idleMb = rssMb(child.pid!)
  const memBefore = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
  const bytes = mib * 1024 * 1024
  const res = await fetch(`${url}/v1/jobs?wait=true`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({
      runtime: 'python',
      source: `import sys\nfor _ in range(${mib * 16}): sys.stdout.write('o' * 65536)\nfor _ in range(${mib * 16}): sys.stderr.write('e' * 65536)`,
      limits: { outputBytes: bytes, timeoutMs: 120_000 },
    }),
  })
  const job = (await res.json()) as { id: string; status: string; stdout: string; stderr: string }
  const memAfter = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
  console.log(
    `job ${job.id}: ${job.status}, stdout ${job.stdout.length} B, stderr ${job.stderr.length} B; Redis grew by ${((memAfter - memBefore) / 1e6).toFixed(1)} MB`,
  )
  peakMb = 0
  // What the readers add is counted from here: the job's own run and its ?wait answer (20 MB
  // of JSON, collected whenever the heap next is) are not theirs.
  const beforeReadersMb = rssMb(child.pid!)

  for (let i = 0; i < stalled; i++) closers.push(stalledStream(port, `/v1/jobs/${job.id}/stream?from=999999999`, key))
  const t0 = Date.now()
  const results = await Promise.all(
    Array.from({ length: readers }, async (_, i) => {
      const path = i % 2 ? `/v1/jobs/${job.id}` : `/v1/jobs/${job.id}/logs`
      try {
        const r = await fetch(`${url}${path}`, { headers: auth, signal: AbortSignal.timeout(300_000) })
        if (r.status !== 200) return `HTTP ${r.status}`
        // Counted as it arrives: a reader here must not hold 20 MB, or the numbers are ours.
        // The first two readers also check the body's content whole.
        const whole = i < 2
        let length = 0
        let text = ''
        const decoder = new TextDecoder()
        for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
          length += chunk.length
          if (whole) text += decoder.decode(chunk, { stream: true })
        }
        if (path.endsWith('/logs')) {
          if (length !== 2 * bytes) return `short log: ${length} of ${2 * bytes}`
          return !whole || text === 'o'.repeat(bytes) + 'e'.repeat(bytes) ? 'ok' : 'wrong log text'
        }
        if (length < 2 * bytes) return `short job: ${length} bytes`
        if (!whole) return 'ok'
        const j = JSON.parse(text) as { stdout: string; stderr: string }
        return j.stdout === 'o'.repeat(bytes) && j.stderr === 'e'.repeat(bytes)
          ? 'ok'
          : `wrong job: ${j.stdout.length}+${j.stderr.length}`
      } catch (err) {
        return `error: ${(err as Error).message}`
      }
    }),
  )
  const readMs = Date.now() - t0
  // Stalled streams stay a while, so their cost (or their being dropped) shows.
  await new Promise((r) => setTimeout(r, Number(values['hold-seconds']) * 1000))
  const ok = results.filter((r) => r === 'ok').length
  const alive = child.exitCode === null
  console.log(
    JSON.stringify(
      {
        server: SERVER,
        mibPerStream: mib,
        readers,
        stalledStreams: stalled,
        idleRssMb: Math.round(idleMb),
        beforeReadersRssMb: Math.round(beforeReadersMb),
        peakRssMb: Math.round(peakMb),
        readersComplete: ok,
        readSeconds: readMs / 1000,
        firstProblems: results.filter((r) => r !== 'ok').slice(0, 3),
        processAlive: alive,
        redisGrowthMb: Number(((memAfter - memBefore) / 1e6).toFixed(1)),
      },
      null,
      2,
    ),
  )
} finally {
  clearInterval(sampler)
  for (const close of closers) close()
  child.kill('SIGTERM')
  await exit
  redis.disconnect()
  await dropRedisPrefix(redisUrl, prefix)
  await rm(env.AIRLOCK_STATE_DIR, { recursive: true, force: true })
  await removeCgroup(env.AIRLOCK_CGROUP_PARENT).catch(() => undefined)
}
