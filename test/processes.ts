import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'

/** The built server entry point; scripts/test.sh builds before the tests run. */
export const SERVER_JS = new URL('../dist/bin/airlock-server.js', import.meta.url).pathname

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

/**
 * Settings for a worker process beside a test's harness: its Redis and prefix, and a state
 * directory and cgroup parent of its own (`<harness's>-<name>`).
 */
export function workerEnv(
  config: { redisUrl: string; redisPrefix: string; stateDir: string; cgroupParent: string },
  name: string,
) {
  return {
    REDIS_URL: config.redisUrl,
    AIRLOCK_REDIS_PREFIX: config.redisPrefix,
    AIRLOCK_STATE_DIR: `${config.stateDir}-${name}`,
    AIRLOCK_CGROUP_PARENT: `${config.cgroupParent}-${name}`,
  }
}

/** Starts an Airlock process (`--role=...`) with the given settings. */
export function startAirlock(role: 'all' | 'api' | 'worker', env: Record<string, string>): ChildProcess {
  if (!existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run npm run build (scripts/test.sh does)`)
  return spawn(process.execPath, [SERVER_JS, `--role=${role}`], {
    env: {
      PATH: process.env.PATH ?? '',
      AIRLOCK_LOG_LEVEL: 'warn',
      AIRLOCK_METRICS_PORT: '0',
      HOST: '127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

/** A private Redis on a free port, for tests that stop and start it; `aofDir` turns on persistence. */
export async function startRedis(
  port?: number,
  aofDir?: string,
): Promise<{ port: number; url: string; process: ChildProcess }> {
  const p = port ?? (await freePort())
  const persistence = aofDir ? ['--appendonly', 'yes', '--dir', aofDir] : ['--appendonly', 'no']
  const child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', ...persistence], {
    stdio: 'ignore',
  })
  const url = `redis://127.0.0.1:${p}`
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const sock = createServer()
      sock.once('error', () => resolve(true)) // port taken: the server is listening
      sock.listen(p, '127.0.0.1', () => sock.close(() => resolve(false)))
    })
    if (up) return { port: p, url, process: child }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('redis-server did not start')
}

export async function until<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
