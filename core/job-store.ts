import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Isolation, Job, JobOutcome } from './job.js'
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
  job: Job
}

export type ClaimResult = 'claimed' | 'cancelled' | 'missing' | Exclude<JobStatus, 'queued'>
/** What a cancel did: ended a queued job, signalled a running one, or found it absent or already ended. */
export type CancelResult = { kind: 'cancelled' | 'cancelling' | 'missing' } | { kind: 'finished'; status: JobStatus }

// KEYS[1] job; ARGV: now, worker id, ttl seconds, finished channel, job id
const CLAIM = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
if redis.call('HGET', KEYS[1], 'cancelRequested') == '1' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', ARGV[1], 'reason', 'cancelled before it started')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', ARGV[1], 'worker', ARGV[2])
return 'claimed'
`

// KEYS[1] job; ARGV: ttl seconds, finished channel, job id, then field/value pairs
const FINISH = `
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'queued' then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`

// KEYS[1] job; ARGV: tenant, now, ttl seconds, finished channel, cancel channel, job id
const CANCEL = `
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'missing' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', ARGV[2], 'reason', 'cancelled before it started', 'cancelRequested', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[6])
  return 'do:cancelled'
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancelRequested', '1')
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return 'do:cancelling'
end
return 'was:' .. status
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

export class JobStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly retentionSeconds: number,
  ) {}

  async create(id: string, tenant: string, spec: JobSpec, now = Date.now()): Promise<void> {
    await this.redis.hset(this.keys.job(id), {
      tenant,
      status: 'queued',
      spec: JSON.stringify(spec),
      createdAt: String(now),
    })
  }

  async remove(id: string): Promise<void> {
    await this.redis.del(this.keys.job(id))
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

  async claim(id: string, workerId: string, now = Date.now()): Promise<ClaimResult> {
    return (await this.redis.eval(CLAIM, 1, this.keys.job(id), now, workerId, this.retentionSeconds, this.keys.finishedChannel, id)) as ClaimResult
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
    const args = Object.entries(fields).flat()
    const done = await this.redis.eval(FINISH, 1, this.keys.job(id), this.retentionSeconds, this.keys.finishedChannel, id, ...args)
    return done === 1
  }

  async cancel(id: string, tenant: string, now = Date.now()): Promise<CancelResult> {
    const r = (await this.redis.eval(CANCEL, 1, this.keys.job(id), tenant, now, this.retentionSeconds, this.keys.finishedChannel, this.keys.cancelChannel, id)) as string
    if (r === 'do:cancelled') return { kind: 'cancelled' }
    if (r === 'do:cancelling') return { kind: 'cancelling' }
    if (r.startsWith('was:')) return { kind: 'finished', status: r.slice(4) as JobStatus }
    return { kind: 'missing' }
  }
}
