import { createHash, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { AirlockError } from '../../core/errors.js'
import type { RedisKeys } from '../../core/redis-keys.js'
import { now as clockNow } from '../../core/clock.js'

/** The answer to a stream token that opens nothing (unknown, used, lapsed, or another job's). */
export function invalidStreamToken(): AirlockError {
  return new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'invalid or expired stream token')
}

/**
 * Browsers cannot set headers on a WebSocket, so they open a job's stream with a token
 * in the URL instead of their API key. The token is good for one job, one connection
 * and `ttlSeconds`, so a URL that ends up in a log is worthless by then. Only its hash
 * is stored, with the digest of the key that asked for it: a token is worth no more than
 * that key, which the caller checks again when it is redeemed.
 */
export class StreamTokens {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    /** Unused tokens one tenant may hold at once: each is a key in Redis until it is used or expires. */
    private readonly maxPerTenant: number,
    readonly ttlSeconds = 60,
  ) {}

  static digest(token: string): string {
    return createHash('sha256').update(token).digest('hex')
  }

  /**
   * A new token, unless the tenant holds its most unused ones: then 429 with how long until
   * the oldest lapses. Tokens are counted in a sorted set by expiry: the one being issued
   * is added first and taken out again when it is over, so two issued at once cannot both
   * pass on the same count.
   */
  async issue(
    tenant: string,
    jobId: string,
    keyDigest: string,
    now = clockNow(),
  ): Promise<{ token: string; expiresAt: string }> {
    const token = `st_${randomBytes(24).toString('base64url')}`
    const digest = StreamTokens.digest(token)
    const held = this.keys.tenantStreamTokens(tenant)
    const expiresAt = now + this.ttlSeconds * 1000
    const replies = await this.redis
      .multi()
      .zremrangebyscore(held, '-inf', now)
      .zadd(held, expiresAt, digest)
      .pexpire(held, this.ttlSeconds * 1000)
      .zcard(held)
      .zrange(held, '0', '0', 'WITHSCORES')
      .exec()
    const count = Number(replies?.[3]?.[1] ?? Number.POSITIVE_INFINITY)
    if (count > this.maxPerTenant) {
      await this.redis.zrem(held, digest)
      const oldest = Number((replies?.[4]?.[1] as string[] | undefined)?.[1] ?? expiresAt)
      throw new AirlockError(
        'AIRLOCK_ERR_TOO_MANY_STREAM_TOKENS',
        `this tenant holds ${this.maxPerTenant} unused stream tokens (AIRLOCK_MAX_STREAM_TOKENS_PER_TENANT); one is freed when it is used or expires`,
        undefined,
        Math.max(1, Math.ceil((oldest - now) / 1000)),
      )
    }
    await this.redis.set(
      this.keys.streamToken(digest),
      JSON.stringify({ tenant, jobId, key: keyDigest }),
      'EX',
      this.ttlSeconds,
    )
    return { token, expiresAt: new Date(expiresAt).toISOString() }
  }

  /**
   * The tenant and key the token was issued to, if it is valid for `jobId`, without using
   * it: authentication reads it, and the stream route redeems it only once the WebSocket
   * is about to open (a refused handshake or a full stream cap leaves it usable).
   */
  async peek(token: string, jobId: string): Promise<{ tenant: string; keyDigest: string } | undefined> {
    const raw = await this.redis.get(this.keys.streamToken(StreamTokens.digest(token)))
    if (!raw) return undefined
    const grant = JSON.parse(raw) as { tenant: string; jobId: string; key?: string }
    return grant.jobId === jobId && grant.key ? { tenant: grant.tenant, keyDigest: grant.key } : undefined
  }

  /** The tenant and key the token was issued to, if it is valid for `jobId`; the token is used up. */
  async redeem(token: string, jobId: string): Promise<{ tenant: string; keyDigest: string } | undefined> {
    const digest = StreamTokens.digest(token)
    const raw = await this.redis.getdel(this.keys.streamToken(digest))
    if (!raw) return undefined
    const grant = JSON.parse(raw) as { tenant: string; jobId: string; key?: string }
    // Used, wherever it was meant to go: it no longer counts against its tenant.
    await this.redis.zrem(this.keys.tenantStreamTokens(grant.tenant), digest)
    return grant.jobId === jobId && grant.key ? { tenant: grant.tenant, keyDigest: grant.key } : undefined
  }
}
