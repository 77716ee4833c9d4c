import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import type { StreamTokens } from '../services/stream-tokens.js'
import { keyDigest, type KeyRole, type TenantStore } from '../../core/tenant-store.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated tenant; set on every /v1 request that reaches a handler. */
    tenant: string
    /** The key's role: static keys (AIRLOCK_API_KEYS) are their tenant's admins. */
    keyRole: KeyRole
  }
}

/**
 * Bearer-key authentication: the static keys of AIRLOCK_API_KEYS, then the keys issued
 * through the admin API (in Redis, uncached, so a revocation holds on every replica at
 * once). Keys are looked up by their SHA-256, so the lookup's timing says nothing
 * about how much of a guessed key was right.
 */
export function registerAuth(app: FastifyInstance, tenantsByKey: ReadonlyMap<string, string>, streamTokens: StreamTokens, tenants: TenantStore): void {
  const tenantsByDigest = new Map([...tenantsByKey].map(([key, tenant]) => [keyDigest(key), tenant]))
  app.decorateRequest('tenant', '')
  app.decorateRequest('keyRole', 'member')
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    // Admin routes have their own credential (plugins/admin-auth.ts).
    if (!request.url.startsWith('/v1/') || request.url.startsWith('/v1/admin/')) return
    const header = request.headers.authorization
    // A browser opening a job's stream authenticates with a single-use token instead.
    const query = request.query as { token?: unknown } | undefined
    if (!header && request.routeOptions.url === '/v1/jobs/:id/stream' && typeof query?.token === 'string') {
      const jobId = (request.params as { id?: string }).id ?? ''
      const tenant = await streamTokens.redeem(query.token, jobId)
      if (!tenant) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'invalid or expired stream token')
      request.tenant = tenant
      request.keyRole = 'member'
      request.log = reply.log = request.log.child({ tenant })
      return
    }
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
    if (!m) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'missing bearer token: send Authorization: Bearer <api key>')
    const digest = keyDigest(m[1]!)
    const staticTenant = tenantsByDigest.get(digest)
    if (staticTenant) {
      request.tenant = staticTenant
      request.keyRole = 'admin'
    } else {
      const identity = await tenants.authenticate(digest)
      if (!identity) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'invalid or revoked API key')
      request.tenant = identity.tenant
      request.keyRole = identity.role
      void tenants.auditKeyUse(identity, `${request.method} ${request.routeOptions.url ?? request.url}`).catch(() => undefined)
    }
    request.log = reply.log = request.log.child({ tenant: request.tenant })
  })
}
