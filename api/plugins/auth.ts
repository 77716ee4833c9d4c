import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import type { StreamTokens } from '../services/stream-tokens.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated tenant; set on every /v1 request that reaches a handler. */
    tenant: string
  }
}

function digest(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/**
 * Bearer-key authentication. Keys are looked up by their SHA-256, so the lookup's
 * timing says nothing about how much of a guessed key was right.
 */
export function registerAuth(app: FastifyInstance, tenantsByKey: ReadonlyMap<string, string>, streamTokens: StreamTokens): void {
  const tenantsByDigest = new Map([...tenantsByKey].map(([key, tenant]) => [digest(key), tenant]))
  app.decorateRequest('tenant', '')
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
      request.log = reply.log = request.log.child({ tenant })
      return
    }
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
    if (!m) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'missing bearer token: send Authorization: Bearer <api key>')
    const tenant = tenantsByDigest.get(digest(m[1]!))
    if (!tenant) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'invalid API key')
    request.tenant = tenant
    request.log = reply.log = request.log.child({ tenant })
  })
}
