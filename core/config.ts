/**
 * Configuration from the environment, validated once at start. A bad value stops the
 * process with a message naming the variable and what is allowed; api and worker read
 * the same settings through this one module.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid configuration: ${variable}: ${message}`)
    this.name = 'ConfigError'
  }
}

import { readFileSync } from 'node:fs'
import { defaultKey, LIMIT_BOUNDS, limitSettings, maxKey, type LimitSettingKey } from './limits.js'
import { PLATFORM_CHOICES } from './runsc-platforms.js'
import { RUNTIMES } from './runtimes.js'
import { MAX_TEST_CASES } from './test-cases.js'

type Env = Record<string, string | undefined>

/** The most AIRLOCK_K8S_START_ALLOWANCE_MS may be: also part of how long a claimed job's record must live. */
export const K8S_START_ALLOWANCE_MAX_MS = 3_600_000

interface Setting<T> {
  name: string
  doc: string
  default: T
  parse(raw: string): T
}

function int(name: string, doc: string, def: number, min: number, max: number): Setting<number> {
  return {
    name,
    doc,
    default: def,
    parse(raw) {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got ${JSON.stringify(raw)}`)
      const n = Number(raw)
      if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`)
      return n
    },
  }
}

function num(name: string, doc: string, def: number, min: number, max: number): Setting<number> {
  return {
    name,
    doc,
    default: def,
    parse(raw) {
      const n = Number(raw)
      if (raw.trim() === '' || !Number.isFinite(n))
        throw new ConfigError(name, `expected a number, got ${JSON.stringify(raw)}`)
      if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`)
      return n
    },
  }
}

function str(name: string, doc: string, def: string, pattern?: RegExp, allowed?: string): Setting<string> {
  return {
    name,
    doc,
    default: def,
    parse(raw) {
      if (pattern && !pattern.test(raw))
        throw new ConfigError(name, `must be ${allowed ?? `match ${pattern}`}, got ${JSON.stringify(raw)}`)
      return raw
    },
  }
}

function oneOf<T extends string>(name: string, doc: string, def: T, values: readonly T[]): Setting<T> {
  return {
    name,
    doc,
    default: def,
    parse(raw) {
      if (!(values as readonly string[]).includes(raw))
        throw new ConfigError(name, `must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`)
      return raw as T
    },
  }
}

/** `tenantA:keyA,tenantB:keyB` -> key -> tenant. */
export function parseApiKeys(raw: string, name = 'AIRLOCK_API_KEYS'): Map<string, string> {
  const keys = new Map<string, string>()
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const sep = entry.indexOf(':')
    const tenant = sep > 0 ? entry.slice(0, sep) : ''
    const key = sep > 0 ? entry.slice(sep + 1) : ''
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(tenant)) {
      throw new ConfigError(
        name,
        `each entry must be tenant:key with a tenant of letters, digits, '_', '.', '-' (got an entry starting ${JSON.stringify(entry.slice(0, 8))})`,
      )
    }
    if (key.length < 8) throw new ConfigError(name, `the key of tenant ${tenant} must be at least 8 characters`)
    if (keys.has(key)) throw new ConfigError(name, `a key is declared twice`)
    keys.set(key, tenant)
  }
  return keys
}

/** `image=ref@sha256:...` pairs -> image -> reference. Tags alone are refused: a tag can move. */
export function parseImageRefs(raw: string, name = 'AIRLOCK_K8S_IMAGES'): Map<string, string> {
  const refs = new Map<string, string>()
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^([a-z0-9][a-z0-9_.-]*)=(\S+)$/.exec(entry)
    if (!m) throw new ConfigError(name, `each entry must be image=reference, got ${JSON.stringify(entry)}`)
    if (!/^[^@\s]+@sha256:[0-9a-f]{64}$/.test(m[2]!))
      throw new ConfigError(
        name,
        `the reference of image ${m[1]} must be pinned by digest (name@sha256:<64 hex>), got ${JSON.stringify(m[2])}`,
      )
    refs.set(m[1]!, m[2]!)
  }
  return refs
}

/** The AIRLOCK_DEFAULT_* and AIRLOCK_MAX_* settings, made from core/limits.ts. */
const LIMIT_SETTINGS = Object.fromEntries(
  limitSettings().map((s) => [s.key, (s.type === 'integer' ? int : num)(s.name, s.doc, s.default, s.min, s.max)]),
) as Record<LimitSettingKey, Setting<number>>

export const SETTINGS = {
  port: int('PORT', 'HTTP port of the API', 8080, 0, 65535),
  host: str('HOST', 'Address the API listens on', '0.0.0.0'),
  redisUrl: str(
    'REDIS_URL',
    'Redis connection URL',
    'redis://127.0.0.1:6379',
    /^rediss?:\/\//,
    'a redis:// or rediss:// URL',
  ),
  redisPassword: str(
    'REDIS_PASSWORD',
    "Redis's password, where REDIS_URL carries none (read it from a mounted Secret with REDIS_PASSWORD_FILE)",
    '',
  ),
  redisPrefix: str(
    'AIRLOCK_REDIS_PREFIX',
    'Prefix of every Redis key (lets deployments share a Redis)',
    'airlock',
    /^[A-Za-z0-9_.-]{1,64}$/,
    '1-64 letters, digits, _ . -',
  ),
  apiKeys: str('AIRLOCK_API_KEYS', 'Static tenants and keys, `tenantA:keyA,tenantB:keyB`', ''),
  logLevel: oneOf('AIRLOCK_LOG_LEVEL', 'Log level', 'info', [
    'fatal',
    'error',
    'warn',
    'info',
    'debug',
    'trace',
    'silent',
  ] as const),
  executor: oneOf(
    'AIRLOCK_EXECUTOR',
    'Sandbox executor: local (runsc on this machine) or kubernetes (a Job per job under the gVisor RuntimeClass)',
    'local',
    ['local', 'kubernetes'] as const,
  ),
  workerConcurrency: int('AIRLOCK_WORKER_CONCURRENCY', 'Jobs one worker process runs at once', 4, 1, 256),
  bodyLimitBytes: int(
    'AIRLOCK_MAX_BODY_BYTES',
    'Largest request body accepted',
    2 * 1024 * 1024,
    1024,
    64 * 1024 * 1024,
  ),
  maxBatchJobs: int(
    'AIRLOCK_MAX_BATCH_JOBS',
    'Jobs one POST /v1/jobs/batch may carry (the body limit applies to all of them together); also the most single submissions of one tenant written to Redis together',
    50,
    1,
    1000,
  ),
  jobRetentionSeconds: int(
    'AIRLOCK_JOB_RETENTION_SECONDS',
    'How long a finished job stays queryable',
    7 * 24 * 3600,
    60,
    365 * 24 * 3600,
  ),
  adminKey: str(
    'AIRLOCK_ADMIN_KEY',
    'Credential for /v1/admin (queue state); admin routes answer 401 when unset',
    '',
    /^(|.{16,})$/,
    'empty or at least 16 characters',
  ),
  metricsPort: int(
    'AIRLOCK_METRICS_PORT',
    'Port of the metrics listener (/metrics, /healthz, /readyz), apart from the public API port',
    9464,
    0,
    65535,
  ),
  metricsHost: str(
    'AIRLOCK_METRICS_HOST',
    'Address the metrics listener binds; keep it off the public network',
    '127.0.0.1',
  ),
  metricsHostNames: str(
    'AIRLOCK_METRICS_HOST_NAMES',
    "Host names (comma-separated) a scraper may name in its requests to the metrics listener besides IP addresses and localhost (a Compose service's name); any other name is refused, so a web page whose name resolves to this machine cannot read it from a browser",
    '',
    /^[A-Za-z0-9.\-, ]*$/,
    'host names separated by commas',
  ),
  metricsOnApiPort: oneOf(
    'AIRLOCK_METRICS_ON_API_PORT',
    'Also serve /metrics on the public API port (tenant names and counts: only where that port is private)',
    'false',
    ['true', 'false'] as const,
  ),
  maxConnections: int(
    'AIRLOCK_MAX_CONNECTIONS',
    "Open HTTP connections the API accepts at once (also held below the process's open-file limit, so the worker keeps descriptors for sandboxes); at the cap the oldest connection that has not authenticated is closed to make room",
    4096,
    16,
    1_000_000,
  ),
  trustProxy: str(
    'AIRLOCK_TRUST_PROXY',
    'Addresses or CIDRs of the proxies in front of the API (comma-separated): their X-Forwarded-For names the client for the per-address caps, and their own connections are not held to the per-address connection cap; empty: none',
    '',
    /^[0-9A-Fa-f.:/, ]*$/,
    'addresses or CIDRs separated by commas',
  ),
  maxConnectionsPerAddress: int(
    'AIRLOCK_MAX_CONNECTIONS_PER_ADDRESS',
    "Open HTTP connections from one client address at once: those no tenant's request has claimed, and each tenant's apart (an IPv6 /64 is one address); at the cap the address's oldest connection that has not authenticated is closed to make room",
    256,
    1,
    1_000_000,
  ),
  maxConnectionsPerTenant: int(
    'AIRLOCK_MAX_CONNECTIONS_PER_TENANT',
    "Open HTTP connections one tenant's requests hold at once, from any addresses (a connection is counted for the tenant of its first authenticated request)",
    1024,
    1,
    1_000_000,
  ),
  headersTimeoutMs: int(
    'AIRLOCK_HEADERS_TIMEOUT_MS',
    "Longest a client may take to send a request's headers",
    10_000,
    100,
    600_000,
  ),
  requestTimeoutMs: int(
    'AIRLOCK_REQUEST_TIMEOUT_MS',
    'Longest a client may take to send a whole request (headers and body); answered 408',
    30_000,
    100,
    3_600_000,
  ),
  keepAliveTimeoutMs: int(
    'AIRLOCK_KEEP_ALIVE_TIMEOUT_MS',
    'How long an idle keep-alive connection stays open',
    5_000,
    100,
    600_000,
  ),
  maxStreamsPerTenant: int(
    'AIRLOCK_MAX_STREAMS_PER_TENANT',
    'WebSocket streams one tenant may have open on one API process (429 AIRLOCK_ERR_TOO_MANY_STREAMS above it)',
    64,
    1,
    1_000_000,
  ),
  maxStreamTokensPerTenant: int(
    'AIRLOCK_MAX_STREAM_TOKENS_PER_TENANT',
    'Unused stream tokens one tenant may hold at once, across API processes (429 AIRLOCK_ERR_TOO_MANY_STREAM_TOKENS above it); each lives 60 s',
    1000,
    1,
    1_000_000,
  ),
  maxStreamsPerAddress: int(
    'AIRLOCK_MAX_STREAMS_PER_ADDRESS',
    "WebSocket streams one tenant may have open from one client address (an IPv6 /64 is one) on one API process; other tenants' from it are counted apart. Binds only below AIRLOCK_MAX_STREAMS_PER_TENANT (one client of a tenant's may not take all its streams)",
    64,
    1,
    1_000_000,
  ),
  bodyBufferBytes: int(
    'AIRLOCK_BODY_BUFFER_BYTES',
    'Bytes of request bodies one API process holds at once, for all callers together (a body counts by its Content-Length from before it is read until its answer has left, or until its request is held for its job); past it, or past a quarter of it for one tenant, 503 AIRLOCK_ERR_BODIES_BUSY (bodies no tenant sent have a room of their own, as much as two bodies)',
    64 * 1024 * 1024,
    1024 * 1024,
    4 * 1024 * 1024 * 1024,
  ),
  outputReadBufferBytes: int(
    'AIRLOCK_OUTPUT_READ_BUFFER_BYTES',
    "Bytes of job output one API process holds at once for all readers together (GET a job, its logs, a stream's messages); readers past it wait their turn",
    32 * 1024 * 1024,
    1024 * 1024,
    1 << 30,
  ),
  shutdownGraceMs: int(
    'AIRLOCK_SHUTDOWN_GRACE_MS',
    'On SIGTERM, how long running jobs may finish before they are handed back to the queue',
    25_000,
    0,
    3_600_000,
  ),
  jobLockMs: int(
    'AIRLOCK_JOB_LOCK_MS',
    "A worker's lock on a job it holds; a job whose worker died is handed out again after this",
    30_000,
    1000,
    600_000,
  ),
  isolationCheckIntervalMs: int(
    'AIRLOCK_ISOLATION_CHECK_INTERVAL_MS',
    'How often a worker re-checks that it can isolate jobs (a probe sandbox)',
    60_000,
    200,
    86_400_000,
  ),
  maxActiveRequestsPerTenant: int(
    'AIRLOCK_MAX_ACTIVE_REQUESTS_PER_TENANT',
    "Requests of one tenant one API process works on at once; the rest wait their turn in order, so one tenant's flood is not ahead of another's requests (0: no turns)",
    16,
    0,
    100_000,
  ),
  maxWaitsPerTenant: int(
    'AIRLOCK_MAX_WAITS_PER_TENANT',
    "Requests of one tenant one API process holds open until a job ends (`?wait=true`, Judge0's wait, Piston's execute); past it a wait ends at once, as if its time had run out",
    256,
    1,
    1_000_000,
  ),
  maxWaitMs: int(
    'AIRLOCK_MAX_WAIT_MS',
    'Longest a `?wait=true` request is held before it answers 202',
    330_000,
    1000,
    3_600_000,
  ),
  runscPath: str(
    'AIRLOCK_RUNSC_PATH',
    "The runsc binary: the pinned gVisor release scripts/build-gvisor.sh installs; /usr/bin/runsc is Debian's 2022 release (ptrace only, kept for comparison)",
    '/usr/local/bin/runsc',
  ),
  runcPath: str('AIRLOCK_RUNC_PATH', 'The runc binary, for the runc comparison runtime of benchmarks', 'runc'),
  benchTenants: str(
    'AIRLOCK_BENCH_TENANTS',
    'Tenants allowed to ask for `isolation: runc` (no gVisor) to measure what gVisor costs; comma-separated; empty: nobody',
    '',
    /^[A-Za-z0-9_.,-]*$/,
    'tenant names separated by commas',
  ),
  sandboxNetwork: oneOf(
    'AIRLOCK_SANDBOX_NETWORK',
    'Sandbox network: none (loopback only). host is INSECURE, for proving that `airlock verify` catches a weakened sandbox',
    'none',
    ['none', 'host'] as const,
  ),
  runscPlatform: oneOf(
    'AIRLOCK_RUNSC_PLATFORM',
    'gVisor platform: auto takes the first of systrap, ptrace that runs a probe sandbox on this host (the worker reports which work); a named one is used or no job runs',
    'auto',
    PLATFORM_CHOICES,
  ),
  imagesDir: str('AIRLOCK_IMAGES_DIR', 'Where sandbox root filesystems are installed', '/var/lib/airlock/images'),
  stateDir: str('AIRLOCK_STATE_DIR', 'Runtime state: runsc state, bundles', '/run/airlock'),
  cgroupParent: str(
    'AIRLOCK_CGROUP_PARENT',
    'Parent cgroup of every sandbox (cgroup v1 or v2, whichever the host has; on v2 it must hold no processes)',
    'airlock',
    /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
    'a relative cgroup path',
  ),
  sandboxOverheadMb: int('AIRLOCK_SANDBOX_OVERHEAD_MB', "Memory added to a job's limit for gVisor itself", 64, 0, 4096),
  artifactBytes: int(
    'AIRLOCK_ARTIFACT_BYTES',
    'Bytes of files one job may leave in /workspace/out to come back as artifacts (a tmpfs of that size on the worker; reserved in the storage quota while the job runs; the API and the workers must have the same); 0: artifacts off',
    2 * 1024 * 1024,
    0,
    512 * 1024 * 1024,
  ),
  workspaceMb: int(
    'AIRLOCK_WORKSPACE_MB',
    'Size of the writable /workspace and of /tmp (tmpfs, counts against memory)',
    64,
    1,
    65536,
  ),
  warmPool: str(
    'AIRLOCK_WARM_POOL',
    'local executor: warm sandboxes per runtime, booted before their jobs arrive, `runtime=min:max` (comma-separated): each pool keeps at least min idle and grows toward max with the jobs seen in one second over the last 30 s; a job that finds none starts cold; none: no warm pool',
    'bash=1:4,python=1:4,node=1:4,ml-python=0:2',
    /^(none|[a-z][a-z0-9-]{0,31}=\d{1,3}:\d{1,3}(,[a-z][a-z0-9-]{0,31}=\d{1,3}:\d{1,3})*)$/,
    'none, or runtime=min:max pairs separated by commas',
  ),
  warmPoolMemoryMb: int(
    'AIRLOCK_WARM_POOL_MEMORY_MB',
    "Memory one worker's idle warm sandboxes may hold together (local: measured in their cgroups; kubernetes: the warm pods' memory requests); the pool grows no further past it",
    1024,
    0,
    1 << 20,
  ),
  warmMaxIdleMs: int(
    'AIRLOCK_WARM_MAX_IDLE_MS',
    'A warm sandbox or pod idle this long is replaced by a fresh one',
    600_000,
    1000,
    86_400_000,
  ),
  k8sKubeconfig: str(
    'AIRLOCK_K8S_KUBECONFIG',
    'kubernetes executor: kubeconfig file; empty means the in-cluster service account',
    '',
  ),
  k8sNamespace: str(
    'AIRLOCK_K8S_NAMESPACE',
    'kubernetes executor: namespace of sandbox Jobs (must enforce Pod Security restricted and deny all traffic)',
    'airlock-sandbox',
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    'a namespace name',
  ),
  k8sRuntimeClass: str(
    'AIRLOCK_K8S_RUNTIME_CLASS',
    'kubernetes executor: RuntimeClass of sandbox pods (its handler must be runsc)',
    'gvisor',
    /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
    'a RuntimeClass name',
  ),
  k8sImages: str(
    'AIRLOCK_K8S_IMAGES',
    "kubernetes executor: sandbox images (the catalog's image names) pinned by digest, `python=REGISTRY/airlock/python@sha256:...,node=...` (comma-separated)",
    '',
  ),
  k8sUnschedulableWaitMs: int(
    'AIRLOCK_K8S_UNSCHEDULABLE_WAIT_MS',
    'kubernetes executor: how long a pod may stay unschedulable before its job ends as error',
    60_000,
    0,
    3_600_000,
  ),
  k8sStartAllowanceMs: int(
    'AIRLOCK_K8S_START_ALLOWANCE_MS',
    "kubernetes executor: time for scheduling and image pull added to a job's timeout in the Job's activeDeadlineSeconds (the cluster-side backstop)",
    120_000,
    0,
    K8S_START_ALLOWANCE_MAX_MS,
  ),
  k8sTtlAfterFinishedSeconds: int(
    'AIRLOCK_K8S_TTL_AFTER_FINISHED_SECONDS',
    'kubernetes executor: ttlSecondsAfterFinished, for Jobs a worker could not delete itself',
    3600,
    0,
    7 * 24 * 3600,
  ),
  k8sHandOver: oneOf(
    'AIRLOCK_K8S_HAND_OVER',
    "kubernetes executor: attach: a cold pod's launcher waits for the worker's attach (pods/attach), which then reads the program's output and its end from the container runtime directly, without waiting for the kubelet's status; log: the program starts at once and its output and end come from the log endpoint once the kubelet's status shows the container",
    'attach',
    ['attach', 'log'] as const,
  ),
  k8sLogStreams: oneOf(
    'AIRLOCK_K8S_LOG_STREAMS',
    'kubernetes executor: auto keeps stdout and stderr apart where the cluster allows it (feature gate PodLogsQuerySplitStreams on the API server and kubelets), else merges them into stdout; merged always merges them',
    'auto',
    ['auto', 'merged'] as const,
  ),
  k8sWarmPool: str(
    'AIRLOCK_K8S_WARM_POOL',
    'kubernetes executor: warm pods per runtime, booted before their jobs and waiting on stdin, `runtime=min:max` as AIRLOCK_WARM_POOL; each holds the default memory and CPUs of a job on its node, and takes only jobs with those (others get a Job of their own); none: no warm pods',
    'none',
    /^(none|[a-z][a-z0-9-]{0,31}=\d{1,3}:\d{1,3}(,[a-z][a-z0-9-]{0,31}=\d{1,3}:\d{1,3})*)$/,
    'none, or runtime=min:max pairs separated by commas',
  ),
  k8sWatchTimeoutSeconds: int(
    'AIRLOCK_K8S_WATCH_TIMEOUT_SECONDS',
    'kubernetes executor: the longest one watch request lasts before it is resumed',
    300,
    1,
    3600,
  ),
  defaultSubmitsPerSecond: int(
    'AIRLOCK_DEFAULT_SUBMITS_PER_SECOND',
    'Submissions per second of a tenant without its own quota; 0: no limit',
    100,
    0,
    1_000_000,
  ),
  defaultMaxRunning: int(
    'AIRLOCK_DEFAULT_MAX_RUNNING',
    "Jobs one tenant without its own quota may run at once, over every worker (keep it below the deployment's slots so no tenant holds them all); 0: no limit",
    2,
    0,
    1_000_000,
  ),
  defaultMaxQueued: int(
    'AIRLOCK_DEFAULT_MAX_QUEUED',
    'Jobs one tenant without its own quota may have queued at once; 0: no limit',
    1000,
    0,
    1_000_000,
  ),
  defaultMaxStoredBytes: int(
    'AIRLOCK_DEFAULT_MAX_STORED_BYTES',
    "Bytes one tenant without its own quota may hold in Redis (each job's input and output; a job reserves its output cap until it ends); 0: no limit",
    256 * 1024 * 1024,
    0,
    2 ** 50,
  ),
  ...LIMIT_SETTINGS,
  maxTestCases: int(
    'AIRLOCK_MAX_TEST_CASES',
    `Test cases one job may carry (each runs with the job's time limit); at most ${MAX_TEST_CASES}`,
    32,
    1,
    MAX_TEST_CASES,
  ),
} as const

type Settings = typeof SETTINGS
export type Config = { [K in keyof Settings]: Settings[K]['default'] } & {
  /** Parsed AIRLOCK_API_KEYS: key -> tenant. */
  tenantsByKey: Map<string, string>
  /** Parsed AIRLOCK_K8S_IMAGES: sandbox image -> reference pinned by digest. */
  k8sImageRefs: Map<string, string>
  /** Parsed AIRLOCK_BENCH_TENANTS, empty entries dropped. */
  benchTenantSet: ReadonlySet<string>
  /** Parsed AIRLOCK_WARM_POOL: runtime -> pool bounds. */
  warmPoolSizes: ReadonlyMap<string, { min: number; max: number }>
  /** Parsed AIRLOCK_K8S_WARM_POOL. */
  k8sWarmPoolSizes: ReadonlyMap<string, { min: number; max: number }>
}

/**
 * `bash=1:4,python=0:8` -> runtime -> bounds (`none`: no pool); every runtime must be in the catalog, min <= max <= 64.
 */
export function parseWarmPool(
  raw: string,
  runtimes: readonly string[],
  name = 'AIRLOCK_WARM_POOL',
): Map<string, { min: number; max: number }> {
  const sizes = new Map<string, { min: number; max: number }>()
  if (raw.trim() === 'none') return sizes
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^([a-z][a-z0-9-]*)=(\d+):(\d+)$/.exec(entry)
    if (!m) throw new ConfigError(name, `each entry must be runtime=min:max, got ${JSON.stringify(entry)}`)
    const [runtime, min, max] = [m[1]!, Number(m[2]), Number(m[3])]
    if (!runtimes.includes(runtime))
      throw new ConfigError(name, `unknown runtime ${runtime} (the catalog has ${runtimes.join(', ')})`)
    if (sizes.has(runtime)) throw new ConfigError(name, `runtime ${runtime} is given twice`)
    if (min > max || max > 64)
      throw new ConfigError(name, `${runtime}: min must not exceed max, and max must be at most 64, got ${min}:${max}`)
    sizes.set(runtime, { min, max })
  }
  return sizes
}

/** `a,b,,c` -> {a, b, c}: an empty entry names no tenant (the empty tenant is nobody). */
export function parseTenantList(raw: string): Set<string> {
  return new Set(
    raw
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean),
  )
}

/**
 * Reads an optional settings file (AIRLOCK_CONFIG_FILE): `NAME=value` lines, `#`
 * comments. Names must be known settings, so a typo stops the process instead of being
 * ignored. The environment wins over the file.
 */
export function readConfigFile(path: string): Env {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError('AIRLOCK_CONFIG_FILE', `cannot read ${path}: ${(err as Error).message}`)
  }
  const known = new Set(Object.values(SETTINGS).flatMap((s) => [s.name, `${s.name}_FILE`]))
  const env: Env = {}
  text.split('\n').forEach((line, i) => {
    const trimmed = line.trim()
    if (!trimmed || trimmed.startsWith('#')) return
    const m = /^([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$/.exec(trimmed)
    if (!m) throw new ConfigError('AIRLOCK_CONFIG_FILE', `${path}:${i + 1}: expected NAME=value`)
    if (!known.has(m[1]!)) throw new ConfigError('AIRLOCK_CONFIG_FILE', `${path}:${i + 1}: unknown setting ${m[1]}`)
    env[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2')
  })
  return env
}

/**
 * `NAME_FILE`: any setting's value from a file, as a Secret mounted as a volume gives it
 * (one file per key), so credentials need not be environment variables, which leak
 * into child processes, crash reports and `kubectl describe`. One newline at the end of
 * the file is not part of the value. NAME itself, where set, wins.
 */
export function readSettingFile(name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    throw new ConfigError(`${name}_FILE`, `cannot read ${path}: ${(err as Error).message}`)
  }
}

/** REDIS_URL with REDIS_PASSWORD put in, unless the URL has a password of its own. */
function withRedisPassword(url: string, password: string): string {
  if (!password) return url
  const u = new URL(url)
  if (u.password) return url
  u.password = password
  return u.toString()
}

export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  if (env.AIRLOCK_CONFIG_FILE) env = { ...readConfigFile(env.AIRLOCK_CONFIG_FILE), ...env }
  const out: Record<string, unknown> = {}
  for (const [field, setting] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const file = env[`${setting.name}_FILE`]
    // An empty NAME= is unset, as everywhere here: NAME_FILE then still counts.
    const raw = env[setting.name] || (file ? readSettingFile(setting.name, file) : undefined)
    out[field] = raw === undefined || raw === '' ? setting.default : setting.parse(raw)
  }
  out.redisUrl = withRedisPassword(out.redisUrl as string, out.redisPassword as string)
  const config = {
    ...(out as Omit<Config, 'tenantsByKey' | 'k8sImageRefs' | 'benchTenantSet' | 'warmPoolSizes' | 'k8sWarmPoolSizes'>),
    ...overrides,
  } as Config
  config.benchTenantSet = parseTenantList(config.benchTenants)
  config.warmPoolSizes =
    overrides.warmPoolSizes ??
    parseWarmPool(
      config.warmPool,
      RUNTIMES.map((r) => r.name),
    )
  config.k8sWarmPoolSizes =
    overrides.k8sWarmPoolSizes ??
    parseWarmPool(
      config.k8sWarmPool,
      RUNTIMES.map((r) => r.name),
      'AIRLOCK_K8S_WARM_POOL',
    )
  config.tenantsByKey = overrides.tenantsByKey ?? parseApiKeys(config.apiKeys)
  config.k8sImageRefs = overrides.k8sImageRefs ?? parseImageRefs(config.k8sImages)
  for (const [field, bound] of LIMIT_BOUNDS) {
    const [def, max] = [defaultKey(field), maxKey(bound)]
    if (config[def] > config[max]) {
      throw new ConfigError(SETTINGS[def].name, `must not exceed ${SETTINGS[max].name} (${String(config[max])})`)
    }
  }
  return config
}
