import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AirlockError } from '../../core/errors.js'

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
export function registerAuth(app: FastifyInstance, tenantsByKey: ReadonlyMap<string, string>): void {
  const tenantsByDigest = new Map([...tenantsByKey].map(([key, tenant]) => [digest(key), tenant]))
  app.decorateRequest('tenant', '')
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (!request.url.startsWith('/v1/') && request.url !== '/v1') return
    const header = request.headers.authorization
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
    if (!m) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'missing bearer token: send Authorization: Bearer <api key>')
    const tenant = tenantsByDigest.get(digest(m[1]!))
    if (!tenant) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'invalid API key')
    request.tenant = tenant
  })
}
