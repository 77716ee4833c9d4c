import { randomUUID } from 'node:crypto'
import type { ChainableCommander, Redis } from 'ioredis'
import { artifactList, artifactStoredBytes, byPath, MAX_ARTIFACT_LIST_BYTES, type Artifact } from './artifacts.js'
import type { Isolation, Job, JobList, JobOutcome, JobSummary } from './job.js'
import type { JobSpec } from './job-spec.js'
import type { JobStatus } from './job-status.js'
import type { RedisKeys } from './redis-keys.js'
import { pipelined } from './redis.js'
import { findRuntime } from './runtimes.js'
import { K8S_START_ALLOWANCE_MAX_MS } from './config.js'
import { LIMITS } from './limits.js'
import type { TenantUsage } from './tenant-store.js'
import { stepResultsMaxBytes, type CompileResult, type StepKind, type TestResult } from './test-cases.js'
import { REASONS } from './job-lifecycle/reasons.js'
import {
  defineJobScripts,
  JOB_OVERHEAD_BYTES,
  LOG_EVENT_OVERHEAD_BYTES,
  MAX_LOG_EVENTS,
  runJobScript,
  runReadScript,
} from './job-lifecycle/scripts.js'
import { TRANSITIONS, type TransitionName } from './job-lifecycle/transitions.js'
import { now as clockNow } from './clock.js'

export { JOB_OVERHEAD_BYTES, LOG_EVENT_OVERHEAD_BYTES, MAX_LOG_EVENTS }

/**
 * Job records in Redis: one hash per job. Every status change is a Lua script
 * (job-lifecycle/lua) that checks the current status against its move's `from` list
 * first (job-lifecycle/transitions.ts), so two processes can never both move a job on
 * (a queued job is claimed once; a final status is written once).
 */

/** Where a job's output lives: its event stream (the usual), or keys of its own. */
export type OutputPlace = 'events' | 'keys'

/** A job record without its spec and output, which can be megabytes: what the API reads. */
/**
 * A job's record without its output and step results (compile output, test cases): what
 * deciding about a job needs, a few hundred bytes however big the job. The API reads
 * this first; the step results (up to a few MB) only under its output budget.
 */
export interface JobHead {
  id: string
  tenant: string
  status: JobStatus
  cancelRequested: boolean
  output: OutputPlace
  job: Omit<Job, 'stdout' | 'stderr' | 'compile' | 'tests' | 'artifacts'>
  /**
   * Characters of the details in Redis (the step results and the artifacts' list, which
   * a job's paths can make ~280 KB): what reading them costs, known before it is paid.
   */
  detailChars: number
  /** Characters of the artifacts' list alone (of detailChars). */
  artifactChars: number
}

export interface JobView extends Omit<JobHead, 'job'> {
  /** The job as clients see it, but for stdout and stderr (read in pieces: job-output.ts). */
  job: Omit<Job, 'stdout' | 'stderr'>
}

export interface StoredJob extends JobView {
  spec: JobSpec
  /** Sandboxes started for this job; more than 1 would break at-most-once. */
  launches: number
}

/** Server-wide quotas of tenants that have none of their own; 0 means no limit. */
export interface TenantDefaults {
  maxRunning: number
  maxQueued: number
  maxStoredBytes: number
}

export const NO_TENANT_DEFAULTS: TenantDefaults = { maxRunning: 0, maxQueued: 0, maxStoredBytes: 0 }

/** A create found its job id taken by another job: neither the record nor a queue entry of that id is this call's. */
export class JobIdTakenError extends Error {
  constructor(id: string) {
    super(`job id ${id} is taken`)
  }
}

/** A job to create; `digest` is its request's, when its id came from an Idempotency-Key. */
export interface KeyedCreate {
  id: string
  spec: JobSpec
  digest?: string
}

/** Who made a job: its tenant, and the digest of the request when an Idempotency-Key named it; and when, and where it is now. */
export interface JobMaker {
  tenant: string
  digest?: string
  status: JobStatus
  createdAt: number
}

/** Which create made a record: the time it was made at and its request's digest (what create.lua compares). */
export interface CreateIdentity {
  createdAt: number
  digest: string | undefined
}

/**
 * What a create did: made the job, refused it for a quota of the tenant's, or found the
 * job its Idempotency-Key names there already, made by the same request or by another.
 */
export type CreateResult = 'created' | 'queued-quota' | 'storage-quota' | 'replay' | 'key-reused'
/** A create's result (with the bytes the tenant held, when storage refused it), or the error Redis gave. */
export type Created = { result: CreateResult; heldBytes?: number } | Error

/** `throttled`: the tenant is at its maxRunning quota; the job stays queued. */
export type ClaimResult = 'claimed' | 'cancelled' | 'missing' | 'throttled' | Exclude<JobStatus, 'queued'>
/** What a cancel did: ended a queued job, signalled a running one, or found it absent or already ended. */
export type CancelResult = { kind: 'cancelled' | 'cancelling' | 'missing' } | { kind: 'finished'; status: JobStatus }

/**
 * What a job holds against its tenant's storage quota until it ends: input, both streams
 * at their cap, its log events, the most artifacts it may leave, and the most its
 * compile and test results may add to its record.
 */
export function jobReservationBytes(
  inputBytes: number,
  outputBytes: number,
  artifactBytes: number,
  stepResultBytes = 0,
): number {
  const artifacts = artifactBytes > 0 ? artifactBytes + MAX_ARTIFACT_LIST_BYTES : 0
  return (
    inputBytes +
    2 * outputBytes +
    MAX_LOG_EVENTS * LOG_EVENT_OVERHEAD_BYTES +
    JOB_OVERHEAD_BYTES +
    artifacts +
    stepResultBytes
  )
}

export function newJobId(): string {
  return `job_${randomUUID().replaceAll('-', '')}`
}

/** Job ids reach Redis keys and runsc container names; anything else is not ours. */
export const JOB_ID_PATTERN = /^job_[0-9a-f]{32}$/

function iso(ms: string | undefined): string | null {
  return ms ? new Date(Number(ms)).toISOString() : null
}

function intOrNull(v: string | undefined): number | null {
  return v === undefined || v === '' ? null : Number(v)
}

/** Fields of a record the API reads: everything but the spec (and legacy output). */
const VIEW_FIELDS = [
  'tenant',
  'status',
  'cancelRequested',
  'output',
  'exitCode',
  'signal',
  'reason',
  'truncated',
  'createdAt',
  'startedAt',
  'finishedAt',
  'startupMs',
  'runMs',
  'bootMs',
  'exitToResultMs',
  'sandboxStart',
  'executor',
  'isolation',
] as const
type ViewFields = Partial<Record<(typeof VIEW_FIELDS)[number], string>>
/** The step results and the artifacts' list: read after the head, and only by the API under its output budget. */
const DETAIL_FIELDS = ['compile', 'tests', 'artifacts'] as const

function parseArtifacts(json: string | null | undefined): Artifact[] {
  return json ? (JSON.parse(json) as Artifact[]) : []
}

function toHead(id: string, h: ViewFields, runtime: string, detailChars: number, artifactChars: number): JobHead {
  const status = h.status as JobStatus
  const created = Number(h.createdAt)
  const started = h.startedAt ? Number(h.startedAt) : null
  return {
    id,
    tenant: h.tenant ?? '',
    status,
    cancelRequested: h.cancelRequested === '1',
    output: h.output === 'keys' ? 'keys' : 'events',
    job: {
      id,
      runtime,
      status,
      exitCode: intOrNull(h.exitCode),
      signal: h.signal || null,
      reason: h.reason || null,
      truncated: h.truncated === '1',
      createdAt: new Date(created).toISOString(),
      startedAt: iso(h.startedAt),
      finishedAt: iso(h.finishedAt),
      timings: {
        queuedMs: started === null ? null : started - created,
        startupMs: intOrNull(h.startupMs),
        runMs: intOrNull(h.runMs),
        bootMs: intOrNull(h.bootMs),
        exitToResultMs: intOrNull(h.exitToResultMs),
      },
      sandboxStart: h.sandboxStart === 'warm' || h.sandboxStart === 'cold' ? h.sandboxStart : null,
      executor: h.executor || null,
      isolation: h.isolation ? (JSON.parse(h.isolation) as Isolation) : null,
    },
    detailChars,
    artifactChars,
  }
}

export interface ListOptions {
  /** Only jobs with one of these statuses; all when absent. */
  statuses?: readonly JobStatus[]
  limit: number
  /** From a previous page's `nextCursor`. */
  cursor?: string
}

/**
 * Opaque to clients: the score and id of the last index entry a page looked at. Any
 * string of this form is a place in the index to go on from, so the schema's pattern
 * is the whole check.
 */
export const CURSOR_PATTERN = '^[0-9]{1,15}\\.job_[0-9a-f]{32}$'
const CURSOR = new RegExp(CURSOR_PATTERN)

export function encodeCursor(score: number, id: string): string {
  return `${score}.${id}`
}

export function decodeCursor(cursor: string): { score: number; id: string } | undefined {
  if (!CURSOR.test(cursor)) return undefined
  const dot = cursor.indexOf('.')
  return { score: Number(cursor.slice(0, dot)), id: cursor.slice(dot + 1) }
}

const SUMMARY_FIELDS = [
  'status',
  'runtime',
  'exitCode',
  'reason',
  'createdAt',
  'startedAt',
  'finishedAt',
  'tenant',
] as const
/**
 * A page stops after looking at this many index entries, so one request's cost is
 * bounded however rare the wanted status is; the cursor carries on from there. At 2,000
 * a filtered page of a big tenant cost 58 ms of the event loop.
 */
export const LIST_SCAN_MAX = 500
const LIST_BATCH = 200

/**
 * How long a job's record lives beyond its retention, from its creation and again from
 * its claim: the longest a claimed job can take (the largest timeout a server may allow,
 * and the most time a Kubernetes start may be given on top of it) and an hour for its
 * start, its artifacts and its end. It was a day: with a 24 h timeout, a job's record
 * could expire while it ran, and its result be lost.
 */
export const LIVE_TTL_BEYOND_RETENTION_SECONDS =
  (LIMITS.timeoutMs.settings.range[1] + K8S_START_ALLOWANCE_MAX_MS) / 1000 + 3600

export class JobStore {
  /** A job that has not ended yet (its record, events and storage entry) lives this long from its creation and from its claim. */
  private readonly liveTtlSeconds: number

  private readonly defaultsJson: string

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly retentionSeconds: number,
    defaults: TenantDefaults = NO_TENANT_DEFAULTS,
    /** The most artifact bytes a job may leave (AIRLOCK_ARTIFACT_BYTES): part of what it reserves. */
    private readonly artifactBytes = 0,
  ) {
    this.liveTtlSeconds = retentionSeconds + LIVE_TTL_BEYOND_RETENTION_SECONDS
    this.defaultsJson = JSON.stringify(defaults)
    defineJobScripts(redis)
  }

  /** The KEYS every job script starts with (job-lifecycle/lua/includes/job.lua). */
  private jobKeys(id: string): string[] {
    return [this.keys.job(id), this.keys.jobEvents(id), this.keys.jobSeq(id)]
  }

  /** jobKeys and then the tenant's (includes/tenant.lua), for the moves that count against its quotas. */
  private tenantJobKeys(id: string, tenant: string): string[] {
    const k = this.keys
    return [
      ...this.jobKeys(id),
      k.running,
      k.tenant(tenant),
      k.tenantQueued(tenant),
      k.tenantRunning(tenant),
      k.tenantStored(tenant),
      k.tenantStoredBytes(tenant),
      k.tenantStoredTotal(tenant),
    ]
  }

  /** The ARGV every job script starts with; the move's own follow. */
  private args(move: TransitionName, id: string, now: number, ...own: (string | number)[]): (string | number)[] {
    const k = this.keys
    const from = TRANSITIONS[move].from.join(',')
    return [
      now,
      this.retentionSeconds,
      this.liveTtlSeconds,
      k.jobNotify(id),
      k.finishedChannel,
      id,
      this.defaultsJson,
      from,
      ...own,
    ]
  }

  /** The tenant a job's record names ('' when there is none): its moves count against that tenant. */
  private async tenantOf(id: string): Promise<string> {
    return (await this.redis.hget(this.keys.job(id), 'tenant')) ?? ''
  }

  /**
   * Runs a move that counts against the job's tenant, naming the tenant's keys from its
   * record; `moreKeys` are the move's own keys of that tenant, after them.
   */
  private async tenantMove(
    move: TransitionName,
    id: string,
    now: number,
    own: readonly (string | number)[],
    moreKeys: (tenant: string) => string[] = () => [],
  ): Promise<unknown> {
    const tenant = await this.tenantOf(id)
    const keys = [...this.tenantJobKeys(id, tenant), ...moreKeys(tenant)]
    return runJobScript(this.redis, move, keys, this.args(move, id, now, tenant, ...own))
  }

  /**
   * Creates the job unless one of the tenant's quotas refuses it (maxQueued, or the
   * bytes it may hold: the job reserves its input and the most output it may write).
   */
  async create(
    id: string,
    tenant: string,
    spec: JobSpec,
    now = clockNow(),
  ): Promise<{ result: CreateResult; heldBytes?: number }> {
    const [created] = await this.createMany(tenant, [{ id, spec }], now)
    if (created instanceof Error) throw created
    return created!
  }

  /**
   * `create` for several jobs of one tenant, in one call; each is created or refused in
   * order, as if alone. A call Redis refused (it is full) is every job's Error.
   */
  async createMany(tenant: string, jobs: readonly KeyedCreate[], now = clockNow()): Promise<Created[]> {
    const pipeline = this.redis.pipeline()
    const created = this.queueCreates(pipeline, tenant, jobs, now)
    return created.read((await pipeline.exec()) ?? [])
  }

  /**
   * Queues one `create` for all the jobs, in order, on a pipeline or transaction (of a
   * connection that had defineJobScripts: the queue's, to write each record with its
   * queue entry): `commands` is how many it queued (none for no jobs), and `read` what
   * each job's create did, from the replies once they ran (those commands' replies first).
   */
  queueCreates(
    pipeline: ChainableCommander,
    tenant: string,
    jobs: readonly KeyedCreate[],
    now = clockNow(),
  ): { commands: number; read: (replies: [Error | null, unknown][]) => Created[] } {
    const first = jobs[0]
    if (!first) return { commands: 0, read: () => [] }
    const oldest = now - this.liveTtlSeconds * 1000
    const keys = [...this.tenantJobKeys(first.id, tenant), this.keys.tenantJobs(tenant)]
    const own: (string | number)[] = [tenant, oldest, jobs.length]
    for (const { id, spec, digest } of jobs) {
      const specJson = JSON.stringify(spec)
      const inputBytes = Buffer.byteLength(specJson)
      const compiles = findRuntime(spec.runtime)?.compile !== undefined
      const stepBytes = stepResultsMaxBytes(compiles, spec.tests?.length ?? 0)
      const reserve = jobReservationBytes(inputBytes, spec.limits.outputBytes, this.artifactBytes, stepBytes)
      keys.push(...this.jobKeys(id))
      own.push(id, this.keys.jobNotify(id), reserve, spec.runtime, specJson, inputBytes, digest ?? '')
    }
    runJobScript(pipeline, 'create', keys, this.args('create', first.id, now, ...own))
    return {
      commands: 1,
      read: (replies) => {
        const [err, reply] = replies[0] ?? [new Error('no reply from Redis'), undefined]
        if (err) return jobs.map(() => err)
        const each = reply as unknown[]
        return jobs.map(({ id }, i) => {
          const r = String(each[i])
          if (r === 'exists') return new JobIdTakenError(id)
          if (r.startsWith('storage-quota:'))
            return { result: 'storage-quota' as const, heldBytes: Number(r.slice('storage-quota:'.length)) }
          if (r === 'queued-quota') return { result: 'queued-quota' as const }
          if (r === 'created' || r === 'replay' || r === 'key-reused') return { result: r }
          return new Error(`unexpected reply from create: ${r}`)
        })
      },
    }
  }

  /**
   * Queues on `pipeline` a read of who made each job and for what request (the tenant
   * and the digest of an Idempotency-Key's request); `read` gives them once it ran,
   * undefined for a job that is not there.
   */
  queueMakers(pipeline: ChainableCommander, ids: readonly string[]): { read: () => (JobMaker | undefined)[] } {
    const replies = ids.map((id) => {
      const reply = pipelined<(string | null)[]>()
      pipeline.hmget(this.keys.job(id), 'tenant', 'requestDigest', 'status', 'createdAt', reply.callback)
      return reply
    })
    return {
      read: () =>
        replies.map((reply) => {
          const [tenant, digest, status, createdAt] = reply.value() ?? []
          return tenant
            ? { tenant, digest: digest ?? undefined, status: status as JobStatus, createdAt: Number(createdAt) }
            : undefined
        }),
    }
  }

  /**
   * Takes back a job that was never accepted (its queue entry could not be written, often
   * because Redis is full), while it is still queued (the withdraw move): 'withdrawn';
   * 'stands' when a worker has it by now (or it has ended), and it stands as accepted;
   * 'absent' when there is no job of this tenant's by that id; 'another' (with `made`)
   * when the job there is not the one this create made: a keyed id's record may be
   * another request's with the same key, made a moment ahead and answered 202. `via`: the connection the creating transaction went on
   * (one with the job scripts defined), so that Redis runs the take-back after it even
   * when that transaction's answer timed out before it ran.
   */
  async withdraw(
    id: string,
    tenant: string,
    { made, now = clockNow(), via = this.redis }: { made?: CreateIdentity; now?: number; via?: Redis } = {},
  ): Promise<'withdrawn' | 'absent' | 'stands' | 'another'> {
    const keys = [...this.tenantJobKeys(id, tenant), this.keys.tenantJobs(tenant)]
    const identity = made ? [made.createdAt, made.digest ?? ''] : []
    const taken = await runJobScript(via, 'withdraw', keys, this.args('withdraw', id, now, tenant, ...identity))
    return taken === 1 ? 'withdrawn' : taken === 2 ? 'stands' : taken === 3 ? 'another' : 'absent'
  }

  /** The whole record, spec included: what a worker needs to run the job. */
  async get(id: string): Promise<StoredJob | undefined> {
    const [view, spec, launches] = await Promise.all([
      this.view(id),
      this.redis.hget(this.keys.job(id), 'spec'),
      this.redis.hget(this.keys.job(id), 'launches'),
    ])
    if (!view || spec === null) return undefined
    return { ...view, spec: JSON.parse(spec) as JobSpec, launches: Number(launches ?? 0) }
  }

  /** Queues on `pipeline` reads of the specs jobs were made with (their limits as they were then); undefined for one gone. */
  queueSpecs(pipeline: ChainableCommander, ids: readonly string[]): { read: () => (JobSpec | undefined)[] } {
    const replies = ids.map((id) => {
      const reply = pipelined<string | null>()
      pipeline.hget(this.keys.job(id), 'spec', reply.callback)
      return reply
    })
    return {
      read: () =>
        replies.map((reply) => {
          const spec = reply.value()
          return spec === null ? undefined : (JSON.parse(spec) as JobSpec)
        }),
    }
  }

  /** The record without spec, output and step results, so reading it costs the same however big the job. */
  async head(id: string): Promise<JobHead | undefined> {
    const key = this.keys.job(id)
    const [values, runtime, compileChars, testsChars, artifactChars] = await Promise.all([
      this.redis.hmget(key, ...VIEW_FIELDS),
      this.redis.hget(key, 'runtime'),
      this.redis.hstrlen(key, 'compile'),
      this.redis.hstrlen(key, 'tests'),
      this.redis.hstrlen(key, 'artifacts'),
    ])
    const h: ViewFields = {}
    VIEW_FIELDS.forEach((f, i) => {
      if (values[i] !== null && values[i] !== undefined) h[f] = values[i]!
    })
    if (!h.status) return undefined
    return toHead(id, h, runtime ?? '', compileChars + testsChars + artifactChars, artifactChars)
  }

  /**
   * The job's step results added to its head. A record that expired since its head was
   * read has none left (an answer already begun is finished with none).
   */
  async withDetails(head: JobHead): Promise<JobView> {
    const [compile, tests, artifacts] = await this.redis.hmget(this.keys.job(head.id), ...DETAIL_FIELDS)
    return {
      ...head,
      job: {
        ...head.job,
        compile: compile ? (JSON.parse(compile) as CompileResult) : null,
        tests: tests ? (JSON.parse(tests) as TestResult[]) : [],
        artifacts: parseArtifacts(artifacts),
      },
    }
  }

  /** The job's artifacts' list alone (the caller holds `head.artifactChars` of budget for it). */
  async artifacts(head: JobHead): Promise<Artifact[]> {
    return parseArtifacts(await this.redis.hget(this.keys.job(head.id), 'artifacts'))
  }

  /** The whole record but spec and output (the worker's and tests' read; the API reads heads). */
  async view(id: string): Promise<JobView | undefined> {
    const head = await this.head(id)
    return head && this.withDetails(head)
  }

  /**
   * The job's head if it exists and belongs to `tenant`; other tenants' jobs do not exist
   * for them. The owner is checked before anything else is read, so a 404 costs the same
   * whether or not the id is another tenant's.
   */
  async headForTenant(id: string, tenant: string): Promise<JobHead | undefined> {
    if ((await this.redis.hget(this.keys.job(id), 'tenant')) !== tenant) return undefined
    const head = await this.head(id)
    return head && head.tenant === tenant ? head : undefined
  }

  /**
   * The tenant's jobs, newest first, a page at a time. Index entries whose record has
   * expired, or is not the tenant's, are dropped as they are met.
   */
  async list(tenant: string, options: ListOptions): Promise<JobList> {
    const index = this.keys.tenantJobs(tenant)
    const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor)
    const wanted = options.statuses && options.statuses.length > 0 ? new Set(options.statuses) : undefined
    const items: JobSummary[] = []
    const max = after ? String(after.score) : '+inf'
    let offset = 0
    let scanned = 0
    let last: { score: number; id: string } | undefined
    for (let first = true; ; first = false) {
      // Unfiltered, a page needs its items and one more (to know there is a next page):
      // a page of 1 reads 2 records, not 200.
      const size = wanted ? LIST_BATCH : Math.min(LIST_BATCH, options.limit - items.length + 1)
      let raw: string[]
      if (after && first) {
        // The first read after a cursor also finds how many entries at the cursor's score
        // were seen already, and the reads after it go on below them.
        const [skip, entries] = (await runReadScript(
          this.redis,
          'listAfter',
          [index],
          [after.score, after.id, size],
        )) as [number, string[]]
        offset = skip
        raw = entries
      } else {
        raw = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', offset, size)
      }
      const batch: { id: string; score: number }[] = []
      for (let i = 0; i + 1 < raw.length; i += 2) batch.push({ id: raw[i]!, score: Number(raw[i + 1]) })
      const pipeline = this.redis.pipeline()
      for (const e of batch) pipeline.hmget(this.keys.job(e.id), ...SUMMARY_FIELDS)
      const rows = (await pipeline.exec()) ?? []
      const gone: string[] = []
      for (const [i, e] of batch.entries()) {
        if (items.length === options.limit) return { items, nextCursor: encodeCursor(last!.score, last!.id) }
        if (scanned === LIST_SCAN_MAX) return { items, nextCursor: last ? encodeCursor(last.score, last.id) : null }
        scanned++
        last = e
        const [err, reply] = rows[i] ?? [new Error('no reply from Redis'), undefined]
        // A read that failed (Redis stalled past the command timeout) says nothing of the
        // record: only a record that is not there, or not the tenant's, makes its entry one to drop.
        if (err) throw err
        const [status, runtime, exitCode, reason, createdAt, startedAt, finishedAt, owner] = reply as (string | null)[]
        // Only the tenant's own index names a record here; its owner is asked all the same,
        // as every read by id asks it (an entry that is not the tenant's is none of its).
        if (!status || owner !== tenant) {
          gone.push(e.id)
          continue
        }
        if (wanted && !wanted.has(status as JobStatus)) continue
        items.push({
          id: e.id,
          runtime: runtime ?? '',
          status: status as JobStatus,
          exitCode: intOrNull(exitCode ?? undefined),
          reason: reason || null,
          createdAt: new Date(Number(createdAt ?? e.score)).toISOString(),
          startedAt: iso(startedAt ?? undefined),
          finishedAt: iso(finishedAt ?? undefined),
        })
      }
      if (gone.length > 0) await this.redis.zrem(index, ...gone)
      if (batch.length < size) return { items, nextCursor: null }
      // Removed entries shift the later ones up by as many places.
      offset += size - gone.length
    }
  }

  /** What a tenant holds now: jobs queued and running, and bytes held against its storage quota. */
  async usage(tenant: string): Promise<TenantUsage> {
    const [queued, running, stored] = await this.redis
      .multi()
      .zcard(this.keys.tenantQueued(tenant))
      .zcard(this.keys.tenantRunning(tenant))
      .get(this.keys.tenantStoredTotal(tenant))
      .exec()
      .then((rows) => (rows ?? []).map(([err, value]) => (err ? 0 : Number(value ?? 0))))
    return { queued: queued ?? 0, running: running ?? 0, storedBytes: Math.max(0, stored ?? 0) }
  }

  async claim(id: string, workerId: string, now = clockNow()): Promise<ClaimResult> {
    // The tenant's job index (KEYS[11]) lives a live TTL from the claim too, as the record does.
    return (await this.tenantMove('claim', id, now, [workerId, REASONS.cancelledBeforeStart], (tenant) => [
      this.keys.tenantJobs(tenant),
    ])) as ClaimResult
  }

  /**
   * Puts a running job back to `queued` (worker shutting down past its grace period),
   * so that a claim can take it again. False if this worker no longer holds it.
   */
  async requeue(id: string, workerId: string, now = clockNow()): Promise<boolean> {
    return (await this.tenantMove('requeue', id, now, [workerId])) === 1
  }

  /**
   * Makes this worker the holder of a running job whose worker stopped, to follow a
   * sandbox that outlived it. False if the job is no longer running (or, when
   * `fromWorker` is given, no longer held by that worker).
   */
  async takeOver(id: string, workerId: string, fromWorker = '', now = clockNow()): Promise<boolean> {
    return (
      (await runJobScript(
        this.redis,
        'takeOver',
        this.jobKeys(id),
        this.args('takeOver', id, now, workerId, fromWorker),
      )) === 1
    )
  }

  /**
   * Counts a sandbox launch for the job (the record of at-most-once) and returns the count,
   * or 0 when this worker may not launch it: the job is no longer running under it.
   */
  async countLaunch(id: string, workerId: string, now = clockNow()): Promise<number> {
    return Number(await runJobScript(this.redis, 'launch', this.jobKeys(id), this.args('launch', id, now, workerId)))
  }

  /** Running jobs and the worker each one was claimed by. */
  async running(): Promise<{ id: string; worker: string }[]> {
    const ids = await this.redis.zrange(this.keys.running, '0', '-1')
    const out: { id: string; worker: string }[] = []
    for (const id of ids) out.push({ id, worker: (await this.redis.hget(this.keys.job(id), 'worker')) ?? '' })
    return out
  }

  /** Ends a running job whose worker is gone as `error`; false if it had moved on. */
  async markLost(id: string, deadWorker: string, now = clockNow()): Promise<boolean> {
    return (await this.tenantMove('lost', id, now, [deadWorker, REASONS.workerLost])) === 1
  }

  /**
   * Appends output to a running job's event stream; returns its seq, or 0 when it was not written (MAX_LOG_EVENTS, or
   * the job is not running).
   */
  async appendLog(id: string, stream: 'stdout' | 'stderr', data: string, now = clockNow()): Promise<number> {
    return Number(await runJobScript(this.redis, 'log', this.jobKeys(id), this.args('log', id, now, stream, data)))
  }

  /** Records that a step of a running job started (a step event); its seq, or 0 when not written. */
  async appendStep(id: string, step: StepKind, index: number, now = clockNow()): Promise<number> {
    return Number(await runJobScript(this.redis, 'step', this.jobKeys(id), this.args('step', id, now, step, index)))
  }

  /**
   * Writes a final status once; returns false if the job had already ended. The output
   * is stored once: in the event stream, where the live log put it, or, when
   * `outputInEvents` is false (a live write failed), in keys of the job's own.
   */
  async finish(
    id: string,
    outcome: JobOutcome,
    meta: { executor: string; isolation: Isolation | null; outputInEvents: boolean },
    now = clockNow(),
  ): Promise<boolean> {
    const fields: Record<string, string> = {
      output: meta.outputInEvents ? 'events' : 'keys',
      status: outcome.status,
      finishedAt: String(now),
      exitCode: outcome.exitCode === null ? '' : String(outcome.exitCode),
      signal: outcome.signal ?? '',
      reason: outcome.reason ?? '',
      truncated: outcome.truncated ? '1' : '0',
      startupMs: outcome.startupMs === null ? '' : String(outcome.startupMs),
      runMs: outcome.runMs === null ? '' : String(outcome.runMs),
      bootMs: outcome.bootMs === undefined || outcome.bootMs === null ? '' : String(outcome.bootMs),
      // The sandbox's clock against this host's (not the deployment's: the sandbox's end is
      // on its host's clock): never below 0 when they disagree by a little.
      exitToResultMs:
        outcome.endedAt === undefined || outcome.endedAt === null
          ? ''
          : String(Math.max(0, Math.round(Date.now() - outcome.endedAt))),
      sandboxStart: outcome.sandboxStart ?? '',
      executor: meta.executor,
      isolation: meta.isolation ? JSON.stringify(meta.isolation) : '',
    }
    // A compiled job's compile and a job's test cases: small (previews), counted against its tenant's storage.
    if (outcome.compile) fields.compile = JSON.stringify(outcome.compile)
    if (outcome.tests) fields.tests = JSON.stringify(outcome.tests)
    if (fields.compile || fields.tests)
      fields.resultBytes = String(Buffer.byteLength(fields.compile ?? '') + Buffer.byteLength(fields.tests ?? ''))
    const k = this.keys
    // Artifacts go first, each in a key of its own (read back in ranges), expiring unless
    // the final write keeps them; the record lists them in the same order.
    const files = byPath(outcome.artifacts ?? [])
    const artifactKeys = files.map((_, i) => k.jobArtifact(id, i))
    if (files.length > 0) {
      try {
        const pipeline = this.redis.pipeline()
        for (const [i, f] of files.entries()) pipeline.set(artifactKeys[i]!, f.content, 'EX', this.liveTtlSeconds)
        for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err
        fields.artifacts = JSON.stringify(artifactList(files))
        fields.artifactBytes = String(artifactStoredBytes(files, fields.artifacts))
      } catch (err) {
        // The job's end is still written (a job always ends); its files are not kept.
        await this.redis.del(...artifactKeys).catch(() => undefined)
        artifactKeys.length = 0
        fields.reason = [fields.reason, `its artifacts could not be stored (${(err as Error).message.split('\n')[0]})`]
          .filter(Boolean)
          .join('; ')
      }
    }
    const [stdout, stderr] = meta.outputInEvents ? ['', ''] : [outcome.stdout, outcome.stderr]
    const tenant = await this.tenantOf(id)
    const keys = [
      ...this.tenantJobKeys(id, tenant),
      k.jobOutput(id, 'stdout'),
      k.jobOutput(id, 'stderr'),
      ...artifactKeys,
    ]
    const done = await runJobScript(
      this.redis,
      'finish',
      keys,
      this.args('finish', id, now, tenant, outcome.status, stdout, stderr, ...Object.entries(fields).flat()),
    )
    // A job that had already ended (lost, cancelled) keeps no files nobody can read or count.
    if (done !== 1 && artifactKeys.length > 0) await this.redis.del(...artifactKeys).catch(() => undefined)
    return done === 1
  }

  async cancel(id: string, tenant: string, now = clockNow()): Promise<CancelResult> {
    const keys = this.tenantJobKeys(id, tenant)
    const r = (await runJobScript(
      this.redis,
      'cancel',
      keys,
      this.args('cancel', id, now, tenant, this.keys.cancelChannel, REASONS.cancelledBeforeStart),
    )) as string
    if (r === 'do:cancelled') return { kind: 'cancelled' }
    if (r === 'do:cancelling') return { kind: 'cancelling' }
    if (r.startsWith('was:')) return { kind: 'finished', status: r.slice(4) as JobStatus }
    return { kind: 'missing' }
  }
}
