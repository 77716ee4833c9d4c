import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Isolation, Job, JobList, JobOutcome, JobSummary } from './job.js'
import type { JobSpec } from './job-spec.js'
import type { JobStatus } from './job-status.js'
import type { RedisKeys } from './redis-keys.js'

/**
 * Job records in Redis: one hash per job. Every status change is a Lua script that
 * checks the current status first, so two processes can never both move a job on
 * (a queued job is claimed once; a final status is written once).
 */

export interface StoredJob {
  id: string
  tenant: string
  spec: JobSpec
  status: JobStatus
  cancelRequested: boolean
  /** Sandboxes started for this job; more than 1 would break at-most-once. */
  launches: number
  job: Job
}

/** `throttled`: the tenant is at its maxRunning quota; the job stays queued. */
export type ClaimResult = 'claimed' | 'cancelled' | 'missing' | 'throttled' | Exclude<JobStatus, 'queued'>
/** What a cancel did: ended a queued job, signalled a running one, or found it absent or already ended. */
export type CancelResult = { kind: 'cancelled' | 'cancelling' | 'missing' } | { kind: 'finished'; status: JobStatus }

// Every script gets the same KEYS (job hash, events stream, seq counter) and the same
// first six ARGV, so each status change and its event are written in one atomic step.
const PRELUDE = `
local now, ttl, liveTtl, notify, finished, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
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
local function quota(tenant, name)
  local q = redis.call('HGET', prefix .. ':tenant:' .. tenant, 'quotas')
  if not q then return nil end
  local ok, d = pcall(cjson.decode, q)
  if ok and type(d) == 'table' and type(d[name]) == 'number' then return d[name] end
  return nil
end
local function final(status)
  redis.call('ZREM', KEYS[4], id)
  local t = jobTenant()
  redis.call('ZREM', tkey(t, 'running'), id)
  redis.call('ZREM', tkey(t, 'queued'), id)
  event('type', 'status', 'status', status)
  event('type', 'end')
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
  redis.call('PUBLISH', finished, id)
end
`

// KEYS[5]: the tenant's job index; ARGV[7]: index entries older than this are
// dropped (their records have expired); ARGV[8..]: field/value pairs of the new record,
// the first pair being 'tenant', <tenant>. Returns 0, creating nothing, when the
// tenant's maxQueued quota is reached.
const CREATE = `${PRELUDE}
local tenant = ARGV[9]
local maxQueued = quota(tenant, 'maxQueued')
if maxQueued and redis.call('ZCARD', tkey(tenant, 'queued')) >= maxQueued then return 0 end
redis.call('ZADD', tkey(tenant, 'queued'), now, id)
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], liveTtl)
redis.call('ZADD', KEYS[5], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[7])
redis.call('EXPIRE', KEYS[5], liveTtl)
event('type', 'status', 'status', 'queued')
return 1
`

// ARGV[7]: worker id
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
redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', now, 'worker', ARGV[7])
redis.call('ZADD', KEYS[4], now, id)
redis.call('ZREM', tkey(tenant, 'queued'), id)
redis.call('ZADD', tkey(tenant, 'running'), now, id)
event('type', 'status', 'status', 'running')
return 'claimed'
`

// ARGV[7]: final status; ARGV[8..]: field/value pairs
const FINISH = `${PRELUDE}
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'queued' then return 0 end
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
final(ARGV[7])
return 1
`

// ARGV[7]: tenant; ARGV[8]: cancel channel
const CANCEL = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[7] then return 'missing' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', now, 'reason', 'cancelled before it started', 'cancelRequested', '1')
  final('cancelled')
  return 'do:cancelled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancelRequested', '1')
  redis.call('PUBLISH', ARGV[8], id)
  return 'do:cancelling'
end
return 'was:' .. status
`

// ARGV[7]: worker id. Only the worker that claimed the job may hand it back.
const REQUEUE = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[7] then return 0 end
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

// ARGV[7]: the worker taking over a running job whose worker stopped; ARGV[8]: that
// worker, or '' for whichever it was.
const TAKE_OVER = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[8] then return 0 end
redis.call('HSET', KEYS[1], 'worker', ARGV[7])
return 1
`

// ARGV[7]: the worker believed dead; ARGV[8]: reason. Ends a running job whose worker
// is gone, unless it has moved on meanwhile.
const LOST = `${PRELUDE}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  redis.call('ZREM', KEYS[4], id)
  return 0
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[7] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'error', 'finishedAt', now, 'reason', ARGV[8])
final('error')
return 1
`

// ARGV[7]: stream name; ARGV[8]: data
const APPEND_LOG = `${PRELUDE}
return event('type', 'log', 'stream', ARGV[7], 'data', ARGV[8])
`

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

function toStoredJob(id: string, h: Record<string, string>): StoredJob {
  const spec = JSON.parse(h.spec ?? '{}') as JobSpec
  const status = h.status as JobStatus
  const created = Number(h.createdAt)
  const started = h.startedAt ? Number(h.startedAt) : null
  return {
    id,
    tenant: h.tenant ?? '',
    spec,
    status,
    cancelRequested: h.cancelRequested === '1',
    launches: Number(h.launches ?? 0),
    job: {
      id,
      runtime: spec.runtime,
      status,
      exitCode: intOrNull(h.exitCode),
      signal: h.signal || null,
      reason: h.reason || null,
      stdout: h.stdout ?? '',
      stderr: h.stderr ?? '',
      truncated: h.truncated === '1',
      createdAt: new Date(created).toISOString(),
      startedAt: iso(h.startedAt),
      finishedAt: iso(h.finishedAt),
      timings: {
        queuedMs: started === null ? null : started - created,
        startupMs: intOrNull(h.startupMs),
        runMs: intOrNull(h.runMs),
      },
      executor: h.executor || null,
      isolation: h.isolation ? (JSON.parse(h.isolation) as Isolation) : null,
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

/** Opaque to clients: the score and id of the last index entry a page looked at. */
export function encodeCursor(score: number, id: string): string {
  return Buffer.from(`${score}:${id}`).toString('base64url')
}

export function decodeCursor(cursor: string): { score: number; id: string } | undefined {
  const m = /^([0-9]{1,15}):(job_[0-9a-f]{32})$/.exec(Buffer.from(cursor, 'base64url').toString())
  return m ? { score: Number(m[1]), id: m[2]! } : undefined
}

const SUMMARY_FIELDS = ['status', 'runtime', 'exitCode', 'reason', 'createdAt', 'startedAt', 'finishedAt'] as const
// A filtered page stops after looking at this many index entries, so one request's
// cost is bounded however rare the wanted status is; the cursor carries on from there.
const LIST_SCAN_MAX = 2000
const LIST_BATCH = 200

export class JobStore {
  /** Events of a job that has not ended yet are kept at least this long. */
  private readonly liveTtlSeconds: number

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly retentionSeconds: number,
  ) {
    this.liveTtlSeconds = retentionSeconds + 24 * 3600
  }

  private script(lua: string, id: string, now: number, ...args: (string | number)[]): Promise<unknown> {
    return this.scriptWithKeys(lua, id, [], now, ...args)
  }

  private scriptWithKeys(lua: string, id: string, extraKeys: string[], now: number, ...args: (string | number)[]): Promise<unknown> {
    const k = this.keys
    const keys = [k.job(id), k.jobEvents(id), k.jobSeq(id), k.running, ...extraKeys]
    return this.redis.eval(lua, keys.length, ...keys, now, this.retentionSeconds, this.liveTtlSeconds, k.jobNotify(id), k.finishedChannel, id, ...args)
  }

  /** False, creating nothing, when the tenant has its maxQueued quota of queued jobs. */
  async create(id: string, tenant: string, spec: JobSpec, now = Date.now()): Promise<boolean> {
    const oldest = now - this.liveTtlSeconds * 1000
    return (await this.scriptWithKeys(CREATE, id, [this.keys.tenantJobs(tenant)], now, oldest, 'tenant', tenant, 'status', 'queued', 'runtime', spec.runtime, 'spec', JSON.stringify(spec), 'createdAt', String(now))) === 1
  }

  /** Removes a job that was never accepted (its queue entry could not be written). */
  async remove(id: string, tenant: string): Promise<void> {
    await this.redis.multi().del(this.keys.job(id), this.keys.jobEvents(id), this.keys.jobSeq(id)).zrem(this.keys.tenantJobs(tenant), id).exec()
  }

  async get(id: string): Promise<StoredJob | undefined> {
    const h = await this.redis.hgetall(this.keys.job(id))
    if (!h.status) return undefined
    return toStoredJob(id, h)
  }

  /** The job if it exists and belongs to `tenant`; other tenants' jobs do not exist for them. */
  async getForTenant(id: string, tenant: string): Promise<StoredJob | undefined> {
    const stored = await this.get(id)
    return stored && stored.tenant === tenant ? stored : undefined
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

  /** Appends output to the job's event stream; returns its seq. */
  async appendLog(id: string, stream: 'stdout' | 'stderr', data: string, now = Date.now()): Promise<number> {
    return Number(await this.script(APPEND_LOG, id, now, stream, data))
  }

  /** Writes a final status once; returns false if the job had already ended. */
  async finish(id: string, outcome: JobOutcome, meta: { executor: string; isolation: Isolation | null }, now = Date.now()): Promise<boolean> {
    const fields: Record<string, string> = {
      status: outcome.status,
      finishedAt: String(now),
      exitCode: outcome.exitCode === null ? '' : String(outcome.exitCode),
      signal: outcome.signal ?? '',
      reason: outcome.reason ?? '',
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      truncated: outcome.truncated ? '1' : '0',
      startupMs: outcome.startupMs === null ? '' : String(outcome.startupMs),
      runMs: outcome.runMs === null ? '' : String(outcome.runMs),
      executor: meta.executor,
      isolation: meta.isolation ? JSON.stringify(meta.isolation) : '',
    }
    const done = await this.script(FINISH, id, now, outcome.status, ...Object.entries(fields).flat())
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
