import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import { buildApp } from '../api/app.js'
import type { StreamLimits } from '../api/services/stream-session.js'
import { loadConfig, type Config } from '../core/config.js'
import { Metrics } from '../core/metrics.js'
import { createLogger } from '../core/logger.js'
import type { Job } from '../core/job.js'
import { JobStore } from '../core/job-store.js'
import { resolveJobSpec } from '../core/job-spec.js'
import { redisKeys } from '../core/redis-keys.js'
import { createExecutor } from '../worker/executors/create-executor.js'
import { hostCgroups } from '../worker/executors/local/cgroup-host.js'
import { unmountUnder } from '../worker/executors/local/mounts.js'
import { WorkerService } from '../worker/worker-service.js'

/** The subset of tap's Test that the helper needs. */
interface TestLike {
  teardown(fn: () => unknown): void
  name?: string
}

export const TENANTS = {
  alice: 'alice-test-key-0001',
  bob: 'bob-test-key-0002',
} as const

export type Tenant = keyof typeof TENANTS

export interface Harness {
  app: FastifyInstance
  config: Config
  metrics: Metrics
  /** http://127.0.0.1:PORT when built with `listen: true`. */
  baseUrl: string
  worker: WorkerService | undefined
  /** Sends a request as `tenant` (default alice). */
  request(
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    body?: unknown,
    tenant?: Tenant,
  ): Promise<LightMyRequestResponse>
  /** Submits a job with ?wait=true and returns the finished job. */
  run(body: Record<string, unknown>, tenant?: Tenant): Promise<Job>
  /** Polls GET /v1/jobs/:id until `until` holds. */
  poll(id: string, until: (job: Job) => boolean, timeoutMs?: number): Promise<Job>
}

export interface BuildOptions {
  /** Start an in-process worker (real runsc). Default true. */
  worker?: boolean
  /** Also listen on a loopback port, for clients that speak real HTTP. */
  listen?: boolean
  streamLimits?: Partial<StreamLimits>
  /** Another Redis than the shared test one. */
  redisUrl?: string
  /** Where the JSON log lines go (default: nowhere, unless AIRLOCK_LOG_LEVEL is set). */
  logStream?: NodeJS.WritableStream
  env?: Record<string, string>
}

/**
 * Removes the harness's parent cgroup and any a test derived from it (`<parent>-w` for
 * a worker process of its own), sandboxes' cgroups first. CgroupV1.remove waits out a
 * sandbox whose last processes are still being reaped, where a single rmdir would not.
 */
async function removeCgroups(parent: string): Promise<void> {
  const host = await hostCgroups()
  if (!host) return
  const slash = parent.lastIndexOf('/')
  const [under, name] = [parent.slice(0, slash), parent.slice(slash + 1)]
  for (const sibling of await host.children(under)) {
    if (sibling === name || sibling.startsWith(`${name}-`))
      await host
        .sandbox(`${under}/${sibling}`)
        .remove()
        .catch(() => undefined)
  }
}

/**
 * Removes the harness's state directory and those a test derived from it (`-w`,
 * `-crash`), detaching first what runsc left mounted there (its null-netns pin, from
 * a worker that was killed), then their parent if nothing else is in it.
 */
async function removeStateDirs(stateDir: string): Promise<void> {
  const [parent, name] = [dirname(stateDir), basename(stateDir)]
  for (const entry of await readdir(parent).catch(() => [] as string[])) {
    if (entry !== name && !entry.startsWith(`${name}-`)) continue
    await unmountUnder(join(parent, entry))
    await rm(join(parent, entry), { recursive: true, force: true })
  }
  await rmdir(parent).catch(() => undefined)
}

/**
 * Writes a bare OCI bundle that runs `args` as the sandbox user on the default image,
 * for tests that drive runsc themselves rather than through the executor.
 */
export async function writeBareBundle(bundle: string, args: string[], imagesDir: string): Promise<void> {
  await mkdir(bundle, { recursive: true })
  await writeFile(
    join(bundle, 'config.json'),
    JSON.stringify({
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 10001, gid: 10001 }, args, env: ['PATH=/usr/bin:/bin'], cwd: '/' },
      root: { path: join(imagesDir, 'default', 'rootfs'), readonly: true },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      },
    }),
  )
}

/** Cgroups of sandboxes (airlock-<job>) left below `parent`, on the host's hierarchy. */
export async function sandboxCgroupsLeft(parent: string): Promise<string[]> {
  const host = await hostCgroups()
  return ((await host?.children(parent)) ?? []).filter((d) => d.startsWith('airlock-'))
}

/** A metric's value for the labels given (0 when it has none yet). */
export async function metricValue(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name)
  const values = (m?.values ?? []) as { labels: Record<string, string | number>; value: number }[]
  return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0
}

/** Waits until the worker's warm pool holds `n` idle sandboxes of `runtime`, so its next job starts warm. */
export async function warmIdle(h: Pick<Harness, 'metrics'>, runtime: string, n = 1, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while ((await metricValue(h.metrics, 'airlock_warm_sandboxes', { runtime, state: 'idle' })) < n) {
    if (Date.now() > deadline) throw new Error(`the warm pool never held ${n} idle ${runtime} sandboxes`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Flags for Debian's Chromium, headless and off the network, with its profile in `profileDir`. */
export function headlessChromium(profileDir: string): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-domain-reliability',
    '--no-pings',
    `--user-data-dir=${profileDir}`,
  ]
}

export function redisUrl(): string {
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
}

/** A JobStore on the real Redis under a prefix of its own, removed when the test ends; and a job spec. */
export function storeOnRedis(t: TestLike, name: string) {
  const redis = new Redis(redisUrl())
  const keys = redisKeys(`${name}-${randomBytes(4).toString('hex')}`)
  t.teardown(async () => {
    const left = await redis.keys(`${keys.prefix}*`)
    if (left.length > 0) await redis.del(...left)
    redis.disconnect()
  })
  const store = new JobStore(redis, keys, 3600)
  return { redis, keys, store, spec: resolveJobSpec({ runtime: 'bash', source: 'true' }, loadConfig({})) }
}

/**
 * Starts the API (and by default a worker with the real local executor) against the
 * real Redis, under a Redis prefix of its own so test files never see each other's
 * keys, and tears everything down with the test.
 */
export async function build(t: TestLike, options: BuildOptions = {}): Promise<Harness> {
  const prefix = `test-${basename(process.argv[1] ?? 'x').replace(/\W+/g, '-')}-${randomBytes(4).toString('hex')}`
  // Machine-level settings (where runsc and the images are) come from the environment.
  const machine = Object.fromEntries(
    ['AIRLOCK_RUNSC_PATH', 'AIRLOCK_RUNSC_PLATFORM', 'AIRLOCK_IMAGES_DIR'].flatMap((k) =>
      process.env[k] ? [[k, process.env[k]!]] : [],
    ),
  )
  const config = loadConfig({
    ...machine,
    REDIS_URL: options.redisUrl ?? redisUrl(),
    AIRLOCK_REDIS_PREFIX: prefix,
    AIRLOCK_API_KEYS: Object.entries(TENANTS)
      .map(([tenant, key]) => `${tenant}:${key}`)
      .join(','),
    AIRLOCK_STATE_DIR: `/run/airlock-test/${prefix}`,
    AIRLOCK_CGROUP_PARENT: `airlock-test/${prefix}`,
    ...options.env,
  })
  const logger = options.logStream
    ? createLogger('debug', {}, options.logStream)
    : createLogger(process.env.AIRLOCK_LOG_LEVEL ?? 'silent')
  const metrics = new Metrics()
  let worker: WorkerService | undefined
  if (options.worker !== false) {
    const executor = createExecutor(config, logger, { metrics })
    worker = new WorkerService(config, executor, logger, metrics)
    await worker.start()
  }
  const app = await buildApp({
    config,
    logger,
    metrics,
    ...(options.streamLimits ? { streamLimits: options.streamLimits } : {}),
  })
  await app.ready()
  const baseUrl = options.listen ? await app.listen({ port: 0, host: '127.0.0.1' }) : ''

  t.teardown(async () => {
    await app.close()
    await worker?.stop(1000)
    await removeStateDirs(config.stateDir)
    await removeCgroups(config.cgroupParent)
    // The Redis may be gone (tests that stop it); cleaning up is then moot.
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true })
    redis.on('error', () => undefined)
    try {
      await redis.connect()
      // The test's own prefix where it named one (replicas that share a Redis).
      const keys = await redis.keys(`{${config.redisPrefix}}*`)
      if (keys.length > 0) await redis.del(...keys)
    } catch {
      // nothing to clean
    } finally {
      redis.disconnect()
    }
  })

  const request: Harness['request'] = (method, url, body, tenant = 'alice') =>
    app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${TENANTS[tenant]}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    })

  return {
    app,
    config,
    metrics,
    baseUrl,
    worker,
    request,
    async run(body, tenant) {
      const res = await request('POST', '/v1/jobs?wait=true', body, tenant)
      if (res.statusCode !== 200)
        throw new Error(`expected 200 from POST /v1/jobs?wait=true, got ${res.statusCode}: ${res.body}`)
      return res.json<Job>()
    },
    async poll(id, until, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const job = (await request('GET', `/v1/jobs/${id}`)).json<Job>()
        if (until(job)) return job
        if (Date.now() > deadline)
          throw new Error(`job ${id} did not reach the expected state; last: ${JSON.stringify(job)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
  }
}

/**
 * Until the returned function is called (or the test ends), every transaction on `client`
 * runs and then its answer is lost, as when the connection breaks right after EXEC: what
 * a submit must be safe against (it cannot know whether its writes were made).
 */
export function loseTransactionAnswers(t: TestLike, client: Redis): () => void {
  const multi = client.multi.bind(client)
  client.multi = ((...args: Parameters<typeof multi>) => {
    const tx = multi(...args)
    const exec = tx.exec.bind(tx)
    tx.exec = async () => {
      await exec()
      throw new Error('Connection is closed.')
    }
    return tx
  }) as typeof client.multi
  const restore = () => {
    client.multi = multi
  }
  t.teardown(restore)
  return restore
}
