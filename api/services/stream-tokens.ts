import { createHash, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { RedisKeys } from '../../core/redis-keys.js'

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
    readonly ttlSeconds = 60,
  ) {}

  private static digest(token: string): string {
    return createHash('sha256').update(token).digest('hex')
  }

  async issue(tenant: string, jobId: string, keyDigest: string): Promise<{ token: string; expiresAt: string }> {
    const token = `st_${randomBytes(24).toString('base64url')}`
    await this.redis.set(
      this.keys.streamToken(StreamTokens.digest(token)),
      JSON.stringify({ tenant, jobId, key: keyDigest }),
      'EX',
      this.ttlSeconds,
    )
    return { token, expiresAt: new Date(Date.now() + this.ttlSeconds * 1000).toISOString() }
  }

  /** The tenant and key the token was issued to, if it is valid for `jobId`; the token is used up. */
  async redeem(token: string, jobId: string): Promise<{ tenant: string; keyDigest: string } | undefined> {
    const raw = await this.redis.getdel(this.keys.streamToken(StreamTokens.digest(token)))
    if (!raw) return undefined
    const grant = JSON.parse(raw) as { tenant: string; jobId: string; key?: string }
    return grant.jobId === jobId && grant.key ? { tenant: grant.tenant, keyDigest: grant.key } : undefined
  }
}
