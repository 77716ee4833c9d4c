import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { artifactList, artifactStoredBytes, byPath, MAX_ARTIFACT_LIST_BYTES, type Artifact } from './artifacts.js'
import type { Isolation, Job, JobList, JobOutcome, JobSummary } from './job.js'
import type { JobSpec } from './job-spec.js'
import type { JobStatus } from './job-status.js'
import type { RedisKeys } from './redis-keys.js'
import { findRuntime } from './runtimes.js'
import type { TenantUsage } from './tenant-store.js'
import { stepResultsMaxBytes, type CompileResult, type StepKind, type TestResult } from './test-cases.js'

/**
 * Job records in Redis: one hash per job. Every status change is a Lua script that
 * checks the current status first, so two processes can never both move a job on
 * (a queued job is claimed once; a final status is written once).
 */

/** Where a job's output lives: its event stream (the usual), or keys of its own. */
export type OutputPlace = 'events' | 'keys'

/** A job record without its spec and output, which can be megabytes: what the API reads. */
export interface JobView {
  id: string
  tenant: string
  status: JobStatus
  cancelRequested: boolean
  output: OutputPlace
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

/** What a create did: made the job, or refused it for a quota of the tenant's. */
export type CreateResult = 'created' | 'queued-quota' | 'storage-quota'

/** Bytes a job record costs Redis beyond its input and output (fields, status events, indexes). */
export const JOB_OVERHEAD_BYTES = 2048
/** What one log event costs Redis beyond its data (its entry, id and fields), counted against the tenant's storage. */
export const LOG_EVENT_OVERHEAD_BYTES = 96
/**
 * Log events one job may write. A program that alternates stdout and stderr a byte at
 * a time makes an event per byte; past this its live log stops and the record keeps
 * its output itself, so neither Redis nor a reader pays for millions of entries.
 */
export const MAX_LOG_EVENTS = 10_000

/** `throttled`: the tenant is at its maxRunning quota; the job stays queued. */
export type ClaimResult = 'claimed' | 'cancelled' | 'missing' | 'throttled' | Exclude<JobStatus, 'queued'>
/** What a cancel did: ended a queued job, signalled a running one, or found it absent or already ended. */
export type CancelResult = { kind: 'cancelled' | 'cancelling' | 'missing' } | { kind: 'finished'; status: JobStatus }

// Every script gets the same KEYS (job hash, events stream, seq counter, running set)
// and the same first seven ARGV, so each status change and its event are written in
// one atomic step. ARGV[7]: the server's default quotas (JSON), for tenants without.
const PRELUDE = `
local now, ttl, liveTtl, notify, finished, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local defaults = cjson.decode(ARGV[7])
local function event(...)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[2], seq .. '-0', 'seq', seq, 'ts', now, ...)
  redis.call('EXPIRE', KEYS[2], liveTtl)
  redis.call('EXPIRE', KEYS[3], liveTtl)
  redis.call('PUBLISH', notify, seq)
  return seq
end
-- Per-tenant sets of queued and running jobs, and the tenant's quotas, hang off the
-- same prefix as KEYS[4] ({prefix}:running), so they stay in the deployment's slot.
local prefix = string.sub(KEYS[4], 1, -9)
local function tkey(tenant, suffix) return prefix .. ':tenant:' .. tenant .. ':' .. suffix end
local function jobTenant() return redis.call('HGET', KEYS[1], 'tenant') or '' end
-- The tenant's own quota, else the server's default; nil (or 0 by default) is no limit.
local function quota(tenant, name)
  local q = redis.call('HGET', prefix .. ':tenant:' .. tenant, 'quotas')
  if q then
    local ok, d = pcall(cjson.decode, q)
    if ok and type(d) == 'table' and type(d[name]) == 'number' then return d[name] end
  end
  local v = defaults[name]
  if type(v) == 'number' and v > 0 then return v end
  return nil
end
-- What a tenant holds in Redis: each job's bytes (a reservation until it ends, then
-- what it really holds), scored by when the record expires, and their running total.
local function storageForget(t, ids)
  for _, j in ipairs(ids) do
    local b = tonumber(redis.call('HGET', tkey(t, 'stored:bytes'), j) or '0')
    redis.call('DECRBY', tkey(t, 'stored:total'), b)
    redis.call('HDEL', tkey(t, 'stored:bytes'), j)
    redis.call('ZREM', tkey(t, 'stored'), j)
  end
end
local function storageSet(t, j, bytes, expiresAt, keepFor)
  local was = tonumber(redis.call('HGET', tkey(t, 'stored:bytes'), j) or '0')
  redis.call('INCRBY', tkey(t, 'stored:total'), bytes - was)
  redis.call('HSET', tkey(t, 'stored:bytes'), j, bytes)
  redis.call('ZADD', tkey(t, 'stored'), expiresAt, j)
  for _, suffix in ipairs({'stored', 'stored:bytes', 'stored:total'}) do redis.call('EXPIRE', tkey(t, suffix), keepFor) end
end
-- Output written to keys of its own (KEYS[5], KEYS[6]) instead of the event stream.
local function outputKeys() return {KEYS[5], KEYS[6]} end
local function final(status)
  redis.call('ZREM', KEYS[4], id)
  local t = jobTenant()
  redis.call('ZREM', tkey(t, 'running'), id)
  redis.call('ZREM', tkey(t, 'queued'), id)
  event('type', 'status', 'status', status)
  event('type', 'end')
  -- A tenant's retention quota can only shorten how long its jobs are kept.
  local keep = tonumber(ttl)
  local own = quota(t, 'retentionSeconds')
  if own and own < keep then keep = own end
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
  if redis.call('HGET', KEYS[1], 'output') == 'keys' and #KEYS >= 6 then
    for _, k in ipairs(outputKeys()) do redis.call('EXPIRE', k, keep) end
  end
  -- The job's artifacts (KEYS[7..], FINISH only) live as long as its record.
  for i = 7, #KEYS do redis.call('EXPIRE', KEYS[i], keep) end
  local held = tonumber(redis.call('HGET', KEYS[1], 'inputBytes') or '0') + tonumber(redis.call('HGET', KEYS[1], 'outputBytes') or '0') + tonumber(redis.call('HGET', KEYS[1], 'artifactBytes') or '0') + tonumber(redis.call('HGET', KEYS[1], 'resultBytes') or '0') + ${JOB_OVERHEAD_BYTES}
  storageSet(t, id, held, tonumber(now) + keep * 1000, liveTtl)
  redis.call('PUBLISH', finished, id)
end
`

// KEYS[5]: the tenant's job index; ARGV[8]: index entries older than this are
// dropped (their records have expired); ARGV[9]: bytes the job reserves (its input
// and the most output it may write); ARGV[10..]: field/value pairs of the new record,
// the first pair being 'tenant', <tenant>. Returns 'created', or what quota refused it
// (creating nothing): 'queued-quota' or 'storage-quota:<held bytes>'.
const CREATE = `${PRELUDE}
local tenant = ARGV[11]
-- A queued entry older than any record can live is one whose record expired unclaimed.
redis.call('ZREMRANGEBYSCORE', tkey(tenant, 'queued'), '-inf', '(' .. ARGV[8])
local maxQueued = quota(tenant, 'maxQueued')
if maxQueued and redis.call('ZCARD', tkey(tenant, 'queued')) >= maxQueued then return 'queued-quota' end
local maxStored = quota(tenant, 'maxStoredBytes')
if maxStored then
  -- Records that expired free their bytes here, a bounded number per submission.
  storageForget(tenant, redis.call('ZRANGEBYSCORE', tkey(tenant, 'stored'), '-inf', now, 'LIMIT', 0, 200))
  local held = tonumber(redis.call('GET', tkey(tenant, 'stored:total')) or '0')
  if held + tonumber(ARGV[9]) > maxStored then return 'storage-quota:' .. held end
end
storageSet(tenant, id, tonumber(ARGV[9]), tonumber(now) + liveTtl * 1000, liveTtl)
redis.call('ZADD', tkey(tenant, 'queued'), now, id)
redis.call('EXPIRE', tkey(tenant, 'queued'), liveTtl)
for i = 10, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], liveTtl)
redis.call('ZADD', KEYS[5], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[8])
redis.call('EXPIRE', KEYS[5], liveTtl)
event('type', 'status', 'status', 'queued')
return 'created'
`

// ARGV[8]: worker id
const CLAIM = `${PRELUDE}
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
if redis.call('HGET', KEYS[1], 'cancelRequested') == '1' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', now, 'reason', 'cancelled before it started')
  final('cancelled')
  return 'cancelled'
end
-- The fair-share gate: a tenant at its maxRunning quota waits; its job goes back to
-- the queue for a moment and the worker takes the next one, often another tenant's.
local tenant = jobTenant()
local maxRunning = quota(tenant, 'maxRunning')
if maxRunning and redis.call('ZCARD', tkey(tenant, 'running')) >= maxRunning then return 'throttled' end
redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', now, 'worker', ARGV[8])
redis.call('ZADD', KEYS[4], now, id)
redis.call('ZREM', tkey(tenant, 'queued'), id)
redis.call('ZADD', tkey(tenant, 'running'), now, id)
event('type', 'status', 'status', 'running')
return 'claimed'
`

// KEYS[5], KEYS[6]: the job's stdout and stderr keys; KEYS[7..]: its artifacts' keys,
// written before (to expire unless this keeps them); ARGV[8]: final status; ARGV[9],
// ARGV[10]: stdout and stderr to keep in those keys, when the record's output field
// says 'keys' (the event stream missed some); ARGV[11..]: field/value pairs.
const FINISH = `${PRELUDE}
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'queued' then return 0 end
for i = 11, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('HGET', KEYS[1], 'output') == 'keys' then
  redis.call('SET', KEYS[5], ARGV[9])
  redis.call('SET', KEYS[6], ARGV[10])
  -- Whatever the live log holds stays too (it is what streams replay): both are counted.
  redis.call('HINCRBY', KEYS[1], 'outputBytes', #ARGV[9] + #ARGV[10])
end
final(ARGV[8])
return 1
`

// ARGV[8]: tenant; ARGV[9]: cancel channel
const CANCEL = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[8] then return 'missing' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', now, 'reason', 'cancelled before it started', 'cancelRequested', '1')
  final('cancelled')
  return 'do:cancelled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancelRequested', '1')
  redis.call('PUBLISH', ARGV[9], id)
  return 'do:cancelling'
end
return 'was:' .. status
`

// ARGV[8]: worker id. Only the worker that claimed the job may hand it back.
const REQUEUE = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'startedAt', 'worker')
redis.call('HINCRBY', KEYS[1], 'handedBack', 1)
redis.call('ZREM', KEYS[4], id)
local tenant = jobTenant()
redis.call('ZREM', tkey(tenant, 'running'), id)
redis.call('ZADD', tkey(tenant, 'queued'), now, id)
event('type', 'status', 'status', 'queued')
return 1
`

// ARGV[8]: the worker taking over a running job whose worker stopped; ARGV[9]: that
// worker, or '' for whichever it was.
const TAKE_OVER = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if ARGV[9] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[9] then return 0 end
redis.call('HSET', KEYS[1], 'worker', ARGV[8])
return 1
`

// ARGV[8]: the worker believed dead; ARGV[9]: reason. Ends a running job whose worker
// is gone, unless it has moved on meanwhile.
const LOST = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  redis.call('ZREM', KEYS[4], id)
  return 0
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'error', 'finishedAt', now, 'reason', ARGV[9])
final('error')
return 1
`

// ARGV[8]: stream name; ARGV[9]: data. Only a running job's log grows (not one already
// ended, say as lost, whose worker still writes), and only to MAX_LOG_EVENTS events.
// The record counts the bytes, which its tenant's storage quota holds once it ends.
// Returns the event's seq, or 0 when nothing was written.
const APPEND_LOG = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HINCRBY', KEYS[1], 'logEvents', 1) > ${MAX_LOG_EVENTS} then return 0 end
redis.call('HINCRBY', KEYS[1], 'outputBytes', #ARGV[9] + ${LOG_EVENT_OVERHEAD_BYTES})
return event('type', 'log', 'stream', ARGV[8], 'data', ARGV[9])
`

// ARGV[8]: step kind; ARGV[9]: its index. A step of the job starting, between its log
// events; counted and bounded as they are. Returns the event's seq, or 0.
const APPEND_STEP = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HINCRBY', KEYS[1], 'logEvents', 1) > ${MAX_LOG_EVENTS} then return 0 end
redis.call('HINCRBY', KEYS[1], 'outputBytes', ${LOG_EVENT_OVERHEAD_BYTES})
return event('type', 'step', 'step', ARGV[8], 'index', ARGV[9])
`

/**
 * What a job holds against its tenant's storage quota until it ends: input, both streams
 * at their cap, its log events, the most artifacts it may leave, and the most its
 * compile and test results may add to its record.
 */
export function jobReservationBytes(inputBytes: number, outputBytes: number, artifactBytes: number, stepResultBytes = 0): number {
  const artifacts = artifactBytes > 0 ? artifactBytes + MAX_ARTIFACT_LIST_BYTES : 0
  return inputBytes + 2 * outputBytes + MAX_LOG_EVENTS * LOG_EVENT_OVERHEAD_BYTES + JOB_OVERHEAD_BYTES + artifacts + stepResultBytes
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
const VIEW_FIELDS = ['tenant', 'status', 'cancelRequested', 'output', 'exitCode', 'signal', 'reason', 'truncated', 'createdAt', 'startedAt', 'finishedAt', 'startupMs', 'runMs', 'bootMs', 'exitToResultMs', 'sandboxStart', 'executor', 'isolation', 'artifacts', 'compile', 'tests'] as const
type ViewFields = Partial<Record<(typeof VIEW_FIELDS)[number], string>>

function toView(id: string, h: ViewFields, runtime: string): JobView {
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
      artifacts: h.artifacts ? (JSON.parse(h.artifacts) as Artifact[]) : [],
      compile: h.compile ? (JSON.parse(h.compile) as CompileResult) : null,
      tests: h.tests ? (JSON.parse(h.tests) as TestResult[]) : [],
    },
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

const SUMMARY_FIELDS = ['status', 'runtime', 'exitCode', 'reason', 'createdAt', 'startedAt', 'finishedAt'] as const
// A filtered page stops after looking at this many index entries, so one request's
// cost is bounded however rare the wanted status is; the cursor carries on from there.
const LIST_SCAN_MAX = 2000
const LIST_BATCH = 200

export class JobStore {
  /** Events of a job that has not ended yet are kept at least this long. */
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
    this.liveTtlSeconds = retentionSeconds + 24 * 3600
    this.defaultsJson = JSON.stringify(defaults)
  }

  private script(lua: string, id: string, now: number, ...args: (string | number)[]): Promise<unknown> {
    return this.scriptWithKeys(lua, id, [], now, ...args)
  }

  private scriptWithKeys(lua: string, id: string, extraKeys: string[], now: number, ...args: (string | number)[]): Promise<unknown> {
    return this.redis.eval(...this.evalArgs(lua, id, extraKeys, now, ...args))
  }

  private evalArgs(lua: string, id: string, extraKeys: string[], now: number, ...args: (string | number)[]): [string, number, ...(string | number)[]] {
    const k = this.keys
    const keys = [k.job(id), k.jobEvents(id), k.jobSeq(id), k.running, ...extraKeys]
    return [lua, keys.length, ...keys, now, this.retentionSeconds, this.liveTtlSeconds, k.jobNotify(id), k.finishedChannel, id, this.defaultsJson, ...args]
  }

  /**
   * Creates the job unless one of the tenant's quotas refuses it (maxQueued, or the
   * bytes it may hold: the job reserves its input and the most output it may write).
   */
  async create(id: string, tenant: string, spec: JobSpec, now = Date.now()): Promise<{ result: CreateResult; heldBytes?: number }> {
    const [created] = await this.createMany(tenant, [{ id, spec }], now)
    if (created instanceof Error) throw created
    return created!
  }

  /**
   * `create` for several jobs of one tenant, in one pipeline; each is created or refused
   * in order, as if alone. A write Redis refused (it is full) is that job's Error: the
   * others stand as they were written.
   */
  async createMany(tenant: string, jobs: readonly { id: string; spec: JobSpec }[], now = Date.now()): Promise<({ result: CreateResult; heldBytes?: number } | Error)[]> {
    const oldest = now - this.liveTtlSeconds * 1000
    const pipeline = this.redis.pipeline()
    for (const { id, spec } of jobs) {
      const specJson = JSON.stringify(spec)
      const inputBytes = Buffer.byteLength(specJson)
      const reserve = jobReservationBytes(inputBytes, spec.limits.outputBytes, this.artifactBytes, stepResultsMaxBytes(findRuntime(spec.runtime)?.compile !== undefined, spec.tests?.length ?? 0))
      pipeline.eval(...this.evalArgs(CREATE, id, [this.keys.tenantJobs(tenant)], now, oldest, reserve, 'tenant', tenant, 'status', 'queued', 'runtime', spec.runtime, 'spec', specJson, 'inputBytes', inputBytes, 'createdAt', String(now)))
    }
    const replies = (await pipeline.exec()) ?? []
    return replies.map(([err, reply]) => {
      if (err) return err
      const r = String(reply)
      if (r.startsWith('storage-quota:')) return { result: 'storage-quota' as const, heldBytes: Number(r.slice('storage-quota:'.length)) }
      return { result: r === 'queued-quota' ? ('queued-quota' as const) : ('created' as const) }
    })
  }

  /**
   * Removes a job that was never accepted (its queue entry could not be written, often
   * because Redis is full). Deleting and removing are allowed when Redis is at its
   * maxmemory, so they go first, each on its own; giving back the reservation is a
   * write that a full Redis may refuse, and then the reservation lapses with its expiry.
   */
  async remove(id: string, tenant: string): Promise<void> {
    const k = this.keys
    await this.redis.pipeline().del(k.job(id), k.jobEvents(id), k.jobSeq(id)).zrem(k.tenantJobs(tenant), id).zrem(k.tenantQueued(tenant), id).exec()
    const bytes = Number((await this.redis.hget(k.tenantStoredBytes(tenant), id)) ?? 0)
    try {
      await this.redis.decrby(k.tenantStoredTotal(tenant), bytes)
    } catch {
      return // the entry stays, and is forgotten (and subtracted) once it expires
    }
    await this.redis.pipeline().zrem(k.tenantStored(tenant), id).hdel(k.tenantStoredBytes(tenant), id).exec()
  }

  /** The whole record, spec included: what a worker needs to run the job. */
  async get(id: string): Promise<StoredJob | undefined> {
    const [view, spec, launches] = await Promise.all([this.view(id), this.redis.hget(this.keys.job(id), 'spec'), this.redis.hget(this.keys.job(id), 'launches')])
    if (!view || spec === null) return undefined
    return { ...view, spec: JSON.parse(spec) as JobSpec, launches: Number(launches ?? 0) }
  }

  /** The record without spec and output, so reading it costs the same however big the job. */
  async view(id: string): Promise<JobView | undefined> {
    const [values, runtime] = await Promise.all([this.redis.hmget(this.keys.job(id), ...VIEW_FIELDS), this.redis.hget(this.keys.job(id), 'runtime')])
    const h: ViewFields = {}
    VIEW_FIELDS.forEach((f, i) => {
      if (values[i] !== null && values[i] !== undefined) h[f] = values[i]!
    })
    if (!h.status) return undefined
    return toView(id, h, runtime ?? '')
  }

  /**
   * The job if it exists and belongs to `tenant`; other tenants' jobs do not exist for
   * them. The owner is checked before anything else is read, so a 404 costs the same
   * whether or not the id is another tenant's.
   */
  async viewForTenant(id: string, tenant: string): Promise<JobView | undefined> {
    if ((await this.redis.hget(this.keys.job(id), 'tenant')) !== tenant) return undefined
    const view = await this.view(id)
    return view && view.tenant === tenant ? view : undefined
  }

  /**
   * The tenant's jobs, newest first, a page at a time. Index entries whose record has
   * expired are dropped as they are met.
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
    for (;;) {
      const raw = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', offset, LIST_BATCH)
      const batch: { id: string; score: number }[] = []
      for (let i = 0; i + 1 < raw.length; i += 2) batch.push({ id: raw[i]!, score: Number(raw[i + 1]) })
      // Entries that share the cursor's score sort by id, descending; skip those already seen.
      const fresh = batch.filter((e) => !(after && e.score === after.score && e.id >= after.id))
      const pipeline = this.redis.pipeline()
      for (const e of fresh) pipeline.hmget(this.keys.job(e.id), ...SUMMARY_FIELDS)
      const rows = (await pipeline.exec()) ?? []
      const gone: string[] = []
      for (const [i, e] of fresh.entries()) {
        if (items.length === options.limit) return { items, nextCursor: encodeCursor(last!.score, last!.id) }
        if (scanned === LIST_SCAN_MAX) return { items, nextCursor: last ? encodeCursor(last.score, last.id) : null }
        scanned++
        last = e
        const values = rows[i]?.[1] as (string | null)[] | undefined
        const [status, runtime, exitCode, reason, createdAt, startedAt, finishedAt] = values ?? []
        if (!status) {
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
      if (batch.length < LIST_BATCH) return { items, nextCursor: null }
      // Removed entries shift the later ones up by as many places.
      offset += LIST_BATCH - gone.length
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

  async claim(id: string, workerId: string, now = Date.now()): Promise<ClaimResult> {
    return (await this.script(CLAIM, id, now, workerId)) as ClaimResult
  }

  /**
   * Puts a running job back to `queued` (worker shutting down past its grace period),
   * so that a claim can take it again. False if this worker no longer holds it.
   */
  async requeue(id: string, workerId: string, now = Date.now()): Promise<boolean> {
    return (await this.script(REQUEUE, id, now, workerId)) === 1
  }

  /**
   * Makes this worker the holder of a running job whose worker stopped, to follow a
   * sandbox that outlived it. False if the job is no longer running (or, when
   * `fromWorker` is given, no longer held by that worker).
   */
  async takeOver(id: string, workerId: string, fromWorker = '', now = Date.now()): Promise<boolean> {
    return (await this.script(TAKE_OVER, id, now, workerId, fromWorker)) === 1
  }

  /** Counts a sandbox launch for the job (the record of at-most-once); returns the count. */
  async countLaunch(id: string): Promise<number> {
    return this.redis.hincrby(this.keys.job(id), 'launches', 1)
  }

  /** Running jobs and the worker each one was claimed by. */
  async running(): Promise<{ id: string; worker: string }[]> {
    const ids = await this.redis.zrange(this.keys.running, '0', '-1')
    const out: { id: string; worker: string }[] = []
    for (const id of ids) out.push({ id, worker: (await this.redis.hget(this.keys.job(id), 'worker')) ?? '' })
    return out
  }

  /** Ends a running job whose worker is gone as `error`; false if it had moved on. */
  async markLost(id: string, deadWorker: string, now = Date.now()): Promise<boolean> {
    const reason = 'the worker running this job stopped before it finished; it was not run again'
    return (await this.script(LOST, id, now, deadWorker, reason)) === 1
  }

  /** Appends output to a running job's event stream; returns its seq, or 0 when it was not written (MAX_LOG_EVENTS, or the job is not running). */
  async appendLog(id: string, stream: 'stdout' | 'stderr', data: string, now = Date.now()): Promise<number> {
    return Number(await this.script(APPEND_LOG, id, now, stream, data))
  }

  /** Records that a step of a running job started (a step event); its seq, or 0 when not written. */
  async appendStep(id: string, step: StepKind, index: number, now = Date.now()): Promise<number> {
    return Number(await this.script(APPEND_STEP, id, now, step, index))
  }

  /**
   * Writes a final status once; returns false if the job had already ended. The output
   * is stored once: in the event stream, where the live log put it, or, when
   * `outputInEvents` is false (a live write failed), in keys of the job's own.
   */
  async finish(id: string, outcome: JobOutcome, meta: { executor: string; isolation: Isolation | null; outputInEvents: boolean }, now = Date.now()): Promise<boolean> {
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
      // The sandbox's clock against the worker's: never below 0 when they disagree by a little.
      exitToResultMs: outcome.endedAt === undefined || outcome.endedAt === null ? '' : String(Math.max(0, Math.round(now - outcome.endedAt))),
      sandboxStart: outcome.sandboxStart ?? '',
      executor: meta.executor,
      isolation: meta.isolation ? JSON.stringify(meta.isolation) : '',
    }
    // A compiled job's compile and a job's test cases: small (previews), counted against its tenant's storage.
    if (outcome.compile) fields.compile = JSON.stringify(outcome.compile)
    if (outcome.tests) fields.tests = JSON.stringify(outcome.tests)
    if (fields.compile || fields.tests) fields.resultBytes = String(Buffer.byteLength(fields.compile ?? '') + Buffer.byteLength(fields.tests ?? ''))
    const k = this.keys
    // Artifacts go first, each in a key of its own (read back in ranges), expiring unless
    // the final write keeps them; the record lists them in the same order.
    const files = byPath(outcome.artifacts ?? [])
    const artifactKeys = files.map((_, i) => k.jobArtifact(id, i))
    if (files.length > 0) {
      try {
        const pipeline = this.redis.pipeline()
        files.forEach((f, i) => pipeline.set(artifactKeys[i]!, f.content, 'EX', this.liveTtlSeconds))
        for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err
        fields.artifacts = JSON.stringify(artifactList(files))
        fields.artifactBytes = String(artifactStoredBytes(files, fields.artifacts))
      } catch (err) {
        // The job's end is still written (a job always ends); its files are not kept.
        await this.redis.del(...artifactKeys).catch(() => undefined)
        artifactKeys.length = 0
        fields.reason = [fields.reason, `its artifacts could not be stored (${(err as Error).message.split('\n')[0]})`].filter(Boolean).join('; ')
      }
    }
    const [stdout, stderr] = meta.outputInEvents ? ['', ''] : [outcome.stdout, outcome.stderr]
    const done = await this.scriptWithKeys(FINISH, id, [k.jobOutput(id, 'stdout'), k.jobOutput(id, 'stderr'), ...artifactKeys], now, outcome.status, stdout, stderr, ...Object.entries(fields).flat())
    // A job that had already ended (lost, cancelled) keeps no files nobody can read or count.
    if (done !== 1 && artifactKeys.length > 0) await this.redis.del(...artifactKeys).catch(() => undefined)
    return done === 1
  }

  async cancel(id: string, tenant: string, now = Date.now()): Promise<CancelResult> {
    const r = (await this.script(CANCEL, id, now, tenant, this.keys.cancelChannel)) as string
    if (r === 'do:cancelled') return { kind: 'cancelled' }
    if (r === 'do:cancelling') return { kind: 'cancelling' }
    if (r.startsWith('was:')) return { kind: 'finished', status: r.slice(4) as JobStatus }
    return { kind: 'missing' }
  }
}
