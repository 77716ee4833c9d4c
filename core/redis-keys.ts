import type { Queue } from 'bullmq'

/**
 * Every Redis key and channel Airlock uses, in one place. All of them hang off one
 * prefix so that several deployments (or test files) can share one Redis safely.
 * The `{prefix}` hash tag keeps a deployment's keys in one Redis Cluster slot, which
 * the Lua scripts and BullMQ both need (Airlock itself connects to one endpoint and does
 * not follow a cluster's redirects: docs/reliability.md).
 */
export interface RedisKeys {
  readonly prefix: string
  /** BullMQ's own prefix; its keys live under `{prefix}:bull:<queue>:*`. */
  readonly bullPrefix: string
  job(id: string): string
  /** Stream of a job's events (status changes and output), entry ids `<seq>-0`. */
  jobEvents(id: string): string
  /** A job's stdout or stderr, when it is not in its event stream (a live write failed). */
  jobOutput(id: string, stream: 'stdout' | 'stderr'): string
  /** The bytes of a job's artifact, by its place in the record's `artifacts` list. */
  jobArtifact(id: string, index: number): string
  /** Counter that numbers a job's events. */
  jobSeq(id: string): string
  /** Pub/sub: the newest seq is published here after each event of the job. */
  jobNotify(id: string): string
  /** Sorted set of a tenant's job ids, scored by creation time (ms), for listing. */
  tenantJobs(tenant: string): string
  /** Sorted set of a tenant's queued jobs (maxQueued); the Lua scripts name it too. */
  tenantQueued(tenant: string): string
  /** Sorted set of a tenant's running jobs (maxRunning); the Lua scripts name it too. */
  tenantRunning(tenant: string): string
  /** Sorted set: the tenant's jobs that hold bytes in Redis, scored by when they expire (ms). */
  tenantStored(tenant: string): string
  /** Hash: job id -> bytes the job holds against the tenant's storage quota. */
  tenantStoredBytes(tenant: string): string
  /** Counter: the sum of tenantStoredBytes. */
  tenantStoredTotal(tenant: string): string
  /** Hash: a tenant made through the admin API (createdAt, quotas as JSON). */
  tenant(name: string): string
  /** Set of the names of tenants made through the admin API. */
  readonly tenants: string
  /** Hash: keyId -> JSON of a tenant's API keys (never the key itself). */
  tenantKeys(name: string): string
  /** Hash: what an API key (by its SHA-256) authenticates: tenant, keyId, role. */
  apiKey(digest: string): string
  /** Stream: a tenant's audit trail (admin actions, key use). */
  audit(tenant: string): string
  /** Counter of a tenant's submissions in one second (rate quota). */
  submitWindow(tenant: string, second: number): string
  /** Marks that a key's use was audited recently (one audit entry per key per minute). */
  keyUse(keyId: string): string
  /** A short-lived, single-use token for opening a job's stream from a browser. */
  streamToken(digest: string): string
  /** Sorted set: a tenant's unused stream tokens (by digest), scored by expiry (ms): their cap. */
  tenantStreamTokens(tenant: string): string
  /** Pub/sub: a job id is published here when the job reaches a final status. */
  readonly finishedChannel: string
  /** Pub/sub: a job id is published here when a running job must be killed. */
  readonly cancelChannel: string
  /** Sorted set of running jobs (scored by claim time), for finding jobs whose worker died. */
  readonly running: string
  /** Sorted set of live workers, scored by last heartbeat (ms). */
  readonly workers: string
  /** Hash: worker id -> JSON heartbeat (executor, isolation report). */
  readonly workerInfo: string
  /** Sorted set of the live workers that can isolate jobs, scored by last heartbeat (ms). */
  readonly workersIsolating: string
}

export function redisKeys(prefix: string): RedisKeys {
  const p = `{${prefix}}`
  return {
    prefix: p,
    bullPrefix: `${p}:bull`,
    job: (id) => `${p}:job:${id}`,
    jobEvents: (id) => `${p}:job:${id}:events`,
    jobSeq: (id) => `${p}:job:${id}:seq`,
    jobOutput: (id, stream) => `${p}:job:${id}:${stream}`,
    jobNotify: (id) => `${p}:job:${id}:notify`,
    jobArtifact: (id, index) => `${p}:job:${id}:artifact:${index}`,
    tenantJobs: (tenant) => `${p}:tenant:${tenant}:jobs`,
    tenantQueued: (tenant) => `${p}:tenant:${tenant}:queued`,
    tenantRunning: (tenant) => `${p}:tenant:${tenant}:running`,
    tenantStored: (tenant) => `${p}:tenant:${tenant}:stored`,
    tenantStoredBytes: (tenant) => `${p}:tenant:${tenant}:stored:bytes`,
    tenantStoredTotal: (tenant) => `${p}:tenant:${tenant}:stored:total`,
    tenant: (name) => `${p}:tenant:${name}`,
    tenants: `${p}:tenants`,
    tenantKeys: (name) => `${p}:tenant:${name}:keys`,
    apiKey: (digest) => `${p}:apikey:${digest}`,
    audit: (tenant) => `${p}:tenant:${tenant}:audit`,
    submitWindow: (tenant, second) => `${p}:tenant:${tenant}:submits:${second}`,
    keyUse: (keyId) => `${p}:keyuse:${keyId}`,
    streamToken: (digest) => `${p}:stream-token:${digest}`,
    tenantStreamTokens: (tenant) => `${p}:tenant:${tenant}:stream-tokens`,
    finishedChannel: `${p}:events:finished`,
    cancelChannel: `${p}:events:cancel`,
    running: `${p}:running`,
    workers: `${p}:workers`,
    workerInfo: `${p}:workers:info`,
    workersIsolating: `${p}:workers:isolating`,
  }
}

export const QUEUE_NAME = 'jobs'

/**
 * A job's entry on the queue: one per job (its id is the job's, so a second add of a job
 * whose entry is there is a no-op), gone once a worker is done with it. `queuedAt` is on
 * the deployment's clock (core/clock.ts), as the queue's age is read (bullmq dates an
 * entry by its adding host's clock otherwise).
 */
export function queueEntry(jobId: string, queuedAt: number) {
  return {
    name: 'run',
    data: { jobId },
    opts: { jobId, removeOnComplete: true, removeOnFail: true, timestamp: queuedAt },
  }
}

/** Adds a job's queue entry (queueEntry) on its own, outside a submit's transaction. */
export function addQueueEntry(queue: Pick<Queue, 'add'>, jobId: string, queuedAt: number): Promise<unknown> {
  const entry = queueEntry(jobId, queuedAt)
  return queue.add(entry.name, entry.data, entry.opts)
}
