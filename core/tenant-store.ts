import { createHash, randomBytes } from 'node:crypto'
import type { ChainableCommander, Redis } from 'ioredis'
import { pipelined } from './redis.js'
import { Type, type Static } from 'typebox'
import { LIMIT_QUOTA_PROPERTIES, QUOTA_MAX } from './limits.js'
import type { RedisKeys } from './redis-keys.js'
import { now as clockNow } from './clock.js'

/** Per-tenant quotas; an absent field means the server's default. */
export const QuotasSchema = Type.Object(
  {
    maxRunning: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: QUOTA_MAX,
        description: "Jobs running at once; more wait in the queue while other tenants' jobs go first",
      }),
    ),
    maxQueued: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: QUOTA_MAX,
        description: 'Jobs queued at once (429 AIRLOCK_ERR_QUOTA_QUEUED above it)',
      }),
    ),
    submitsPerSecond: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: QUOTA_MAX,
        description: 'Job submissions per second (429 AIRLOCK_ERR_QUOTA_RATE above it)',
      }),
    ),
    ...LIMIT_QUOTA_PROPERTIES,
    maxStoredBytes: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: QUOTA_MAX,
        description:
          "Bytes the tenant may hold in Redis: each job's input and output (a job reserves its output cap until it ends); 429 AIRLOCK_ERR_QUOTA_STORAGE above it",
      }),
    ),
    retentionSeconds: Type.Optional(
      Type.Integer({
        minimum: 60,
        maximum: QUOTA_MAX,
        description:
          "How long the tenant's finished jobs are kept; only shortens the server's AIRLOCK_JOB_RETENTION_SECONDS",
      }),
    ),
  },
  { additionalProperties: false, title: 'Quotas' },
)
export type Quotas = Static<typeof QuotasSchema>

export const KeyRoleSchema = Type.Enum(['admin', 'member'], {
  type: 'string',
  title: 'KeyRole',
  description: "admin may also read the tenant's audit trail",
})
export type KeyRole = Static<typeof KeyRoleSchema>

export const KeyInfoSchema = Type.Object(
  {
    keyId: Type.String(),
    role: KeyRoleSchema,
    /** The key's first characters, to recognise it; never the key. */
    prefix: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { title: 'KeyInfo' },
)
export type KeyInfo = Static<typeof KeyInfoSchema>

export const TenantSchema = Type.Object(
  {
    name: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    quotas: QuotasSchema,
    keys: Type.Array(KeyInfoSchema),
  },
  { title: 'Tenant' },
)
export type Tenant = Static<typeof TenantSchema>

export const TenantUsageSchema = Type.Object(
  {
    queued: Type.Integer({ description: 'Jobs waiting now (counted against maxQueued)' }),
    running: Type.Integer({ description: 'Jobs running now (counted against maxRunning)' }),
    storedBytes: Type.Integer({
      description: 'Bytes of jobs, output and artifacts held in Redis now (counted against maxStoredBytes)',
    }),
  },
  { title: 'TenantUsage' },
)
export type TenantUsage = Static<typeof TenantUsageSchema>

export const AuditEntrySchema = Type.Object(
  { at: Type.String({ format: 'date-time' }), actor: Type.String(), action: Type.String(), detail: Type.String() },
  { title: 'AuditEntry' },
)
export type AuditEntry = Static<typeof AuditEntrySchema>
export const AuditListSchema = Type.Object({ entries: Type.Array(AuditEntrySchema) }, { title: 'AuditList' })

export interface KeyIdentity {
  tenant: string
  keyId: string
  role: KeyRole
}

const AUDIT_MAX = 10_000
/** A key's use is audited at most once in this long. */
const KEY_USE_AUDIT_MS = 60_000
/** Keys whose marks this process remembers before it forgets them all (and asks Redis again). */
const KEY_USE_MEMORY = 10_000

export function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/**
 * Tenants, their API keys and audit trails in Redis, so every API replica sees a
 * revocation at once. A key is random, shown once when issued, and stored only as its
 * SHA-256.
 */
export class TenantStore {
  /** keyId -> when this process last marked its use (ms). */
  private readonly keyUseMarked = new Map<string, number>()

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** False if the tenant exists already. */
  async create(name: string, quotas: Quotas, now = clockNow()): Promise<boolean> {
    const created = await this.redis.hsetnx(this.keys.tenant(name), 'createdAt', String(now))
    if (!created) return false
    await this.redis
      .multi()
      .hset(this.keys.tenant(name), 'quotas', JSON.stringify(quotas))
      .sadd(this.keys.tenants, name)
      .exec()
    return true
  }

  async exists(name: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.tenant(name))) === 1
  }

  async get(name: string): Promise<Tenant | null> {
    const [h, keys] = await Promise.all([
      this.redis.hgetall(this.keys.tenant(name)),
      this.redis.hvals(this.keys.tenantKeys(name)),
    ])
    if (!h.createdAt) return null
    return {
      name,
      createdAt: new Date(Number(h.createdAt)).toISOString(),
      quotas: JSON.parse(h.quotas ?? '{}') as Quotas,
      keys: keys
        .map((k) => JSON.parse(k) as KeyInfo & { digest?: string })
        .map(({ digest: _digest, ...k }) => k)
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt)),
    }
  }

  async list(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.tenants)).sort()
  }

  /** Quotas of a tenant; empty for tenants not made through the admin API (static keys). */
  async quotas(name: string): Promise<Quotas> {
    const raw = await this.redis.hget(this.keys.tenant(name), 'quotas')
    return parseQuotas(raw)
  }

  /**
   * Queues on `pipeline` what a submission of `n` jobs reads and counts: the tenant's
   * quotas, and the `n` submissions in this second's window (kept in Redis, so the rate
   * holds across API replicas). Read after the pipeline ran.
   */
  submission(pipeline: ChainableCommander, tenant: string, n: number, now = clockNow()): () => Submission {
    const quotas = pipelined<string | null>()
    const count = pipelined<number>()
    const second = Math.floor(now / 1000)
    const window = this.keys.submitWindow(tenant, second)
    pipeline
      .hget(this.keys.tenant(tenant), 'quotas', quotas.callback)
      .incrby(window, n, count.callback)
      .pexpire(window, 2000)
    return () => {
      const raw = quotas.value()
      return {
        quotas: parseQuotas(raw),
        earlier: count.value() - n,
        resetsInMs: (second + 1) * 1000 - now,
      }
    }
  }

  async setQuotas(name: string, quotas: Quotas): Promise<void> {
    await this.redis.hset(this.keys.tenant(name), 'quotas', JSON.stringify(quotas))
  }

  /** A new key for the tenant; the only time the key itself is seen. */
  async issueKey(tenant: string, role: KeyRole, now = clockNow()): Promise<{ key: string; info: KeyInfo }> {
    const key = `ak_${randomBytes(24).toString('base64url')}`
    const keyId = `key_${randomBytes(6).toString('hex')}`
    const digest = keyDigest(key)
    const info: KeyInfo = {
      keyId,
      role,
      prefix: key.slice(0, 7),
      createdAt: new Date(now).toISOString(),
      revokedAt: null,
    }
    await this.redis
      .multi()
      .hset(this.keys.apiKey(digest), 'tenant', tenant, 'keyId', keyId, 'role', role)
      .hset(this.keys.tenantKeys(tenant), keyId, JSON.stringify({ ...info, digest }))
      .exec()
    return { key, info }
  }

  /** False if there is no such live key. The key stops working on every replica at once. */
  async revokeKey(tenant: string, keyId: string, now = clockNow()): Promise<boolean> {
    const raw = await this.redis.hget(this.keys.tenantKeys(tenant), keyId)
    if (!raw) return false
    const info = JSON.parse(raw) as KeyInfo & { digest: string }
    if (info.revokedAt) return false
    await this.redis
      .multi()
      .del(this.keys.apiKey(info.digest))
      .hset(this.keys.tenantKeys(tenant), keyId, JSON.stringify({ ...info, revokedAt: new Date(now).toISOString() }))
      .exec()
    return true
  }

  async authenticate(digest: string): Promise<KeyIdentity | null> {
    const h = await this.redis.hgetall(this.keys.apiKey(digest))
    if (!h.tenant || !h.keyId) return null
    return { tenant: h.tenant, keyId: h.keyId, role: h.role === 'admin' ? 'admin' : 'member' }
  }

  async audit(tenant: string, actor: string, action: string, detail = '', now = clockNow()): Promise<void> {
    await this.redis.xadd(
      this.keys.audit(tenant),
      'MAXLEN',
      '~',
      String(AUDIT_MAX),
      '*',
      'at',
      String(now),
      'actor',
      actor,
      'action',
      action,
      'detail',
      detail,
    )
  }

  /**
   * Audits a key's use at most once a minute per key. This process remembers the keys it
   * marked, so a busy key costs Redis one write a minute, not one a request; the mark in
   * Redis keeps other replicas from auditing it again within the minute.
   */
  async auditKeyUse(identity: KeyIdentity, what: string, now = clockNow()): Promise<void> {
    const marked = this.keyUseMarked.get(identity.keyId)
    if (marked !== undefined && now - marked < KEY_USE_AUDIT_MS) return
    if (this.keyUseMarked.size >= KEY_USE_MEMORY) this.keyUseMarked.clear()
    this.keyUseMarked.set(identity.keyId, now)
    const seconds = KEY_USE_AUDIT_MS / 1000
    if ((await this.redis.set(this.keys.keyUse(identity.keyId), '1', 'EX', seconds, 'NX')) === 'OK') {
      await this.audit(identity.tenant, identity.keyId, 'key.used', what)
    }
  }

  /** Newest first. */
  async readAudit(tenant: string, limit: number): Promise<AuditEntry[]> {
    const entries = await this.redis.xrevrange(this.keys.audit(tenant), '+', '-', 'COUNT', limit)
    return entries.map(([, fields]) => {
      const f: Record<string, string> = {}
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
      return {
        at: new Date(Number(f.at)).toISOString(),
        actor: f.actor ?? '',
        action: f.action ?? '',
        detail: f.detail ?? '',
      }
    })
  }
}

/** A tenant's stored quotas; none for tenants not made through the admin API (static keys). */
function parseQuotas(raw: string | null): Quotas {
  return raw ? (JSON.parse(raw) as Quotas) : {}
}

/** What a submission read: the tenant's quotas and its submissions earlier in this second. */
export interface Submission {
  quotas: Quotas
  /** Submissions of the tenant counted in this second before this one's. */
  earlier: number
  /** Until the next second's window opens. */
  resetsInMs: number
}

/** Whether the submission at `place` (0-based) of this one's counted ones fits under `perSecond`, after those earlier in the second. */
export function withinRate(submission: Submission, perSecond: number, place: number): boolean {
  return submission.earlier + place < perSecond
}
