import { type LeaveTurn, NO_TURN, type TenantTurns } from '../services/tenant-turns.js'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import { invalidStreamToken, StreamTokens } from '../services/stream-tokens.js'
import type { FailedKeys } from '../services/failed-keys.js'
import type { ClaimConnection } from './connection-limits.js'
import { keyDigest, type KeyRole, type TenantStore } from '../../core/tenant-store.js'
import { bindRequestLog } from '../../core/logger.js'
import { continueExpected } from './error-handler.js'
import { announcesBody } from './body-encoding.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The authenticated tenant. Reading it on a request that was not authenticated
     * throws 401: a route outside the auth scope fails closed instead of serving the
     * empty tenant.
     */
    tenant: string
    /** The authenticated tenant, or '' for a request that was not (what it holds is counted as nobody's). */
    readonly tenantOrNone: string
    /** The key's role: static keys (AIRLOCK_API_KEYS) are their tenant's admins. */
    keyRole: KeyRole
    /** The SHA-256 of the key the request came with (of the key that asked for its stream token). */
    keyDigest: string
    /** The single-use stream token this request authenticated with, still to be used up by its route. */
    streamToken?: string
    /** Whether the request came with the operator's key (AIRLOCK_ADMIN_KEY). */
    operator: boolean
    /** Gives the request's turn among its tenant's back (tenant-turns.ts); does nothing if it holds none. */
    leaveTurn: LeaveTurn
    /** Takes the request's turn among its tenant's, if it holds none (a request of no tenant has none to take). */
    takeTurn: () => Promise<void>
  }
}

const TENANT = Symbol('tenant')
type WithTenant = FastifyRequest & { [TENANT]?: string }

/** A tenant name as AIRLOCK_API_KEYS and the admin API allow; never empty. */
const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** Gives every request a `tenant` that exists only once authentication set it. */
export function decorateTenant(app: FastifyInstance): void {
  app.decorateRequest('tenant', {
    getter(this: WithTenant): string {
      const tenant = this[TENANT]
      if (!tenant) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'this request is not authenticated')
      return tenant
    },
    setter(this: WithTenant, tenant: string): void {
      // An empty or malformed tenant is nobody: it is never authorized for anything.
      if (!TENANT_NAME.test(tenant))
        throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'this credential names no tenant')
      this[TENANT] = tenant
    },
  })
  app.decorateRequest('keyRole', 'member')
  app.decorateRequest('tenantOrNone', {
    getter(this: WithTenant): string {
      return this[TENANT] ?? ''
    },
  })
  app.decorateRequest('keyDigest', '')
  app.decorateRequest('streamToken', undefined)
  app.decorateRequest('operator', false)
  app.decorateRequest('leaveTurn', NO_TURN)
  app.decorateRequest('takeTurn', async () => undefined)
}

export interface AuthOptions {
  tenantsByKey: ReadonlyMap<string, string>
  streamTokens: StreamTokens
  tenants: TenantStore
  /** Refuses made-up keys unasked past an address's allowance (FailedKeys). */
  failedKeys: FailedKeys
  /** Counts the request's connection as its tenant's: past the tenant's cap, 503 and the connection closed. */
  claimConnection: ClaimConnection
  /** Where the tenant's requests take turns, once authenticated. */
  turns: TenantTurns
  /**
   * Where a request's API key is, for an API whose clients send it elsewhere than
   * `Authorization: Bearer` (the Judge0 adapter's X-Auth-Token); undefined: none sent.
   * @default bearerKey
   */
  keyFrom?: (request: FastifyRequest) => string | undefined
  /** What a request without a key is told. */
  missingKey?: string
}

/** The key of `Authorization: Bearer <key>`, if that is what the header holds. */
export function bearerKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  return (header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined) ?? undefined
}

/**
 * The tenant a key (by its digest) stands for now: a static key's, or an issued one's
 * while it is not revoked; undefined for none. Asked again by whatever outlives the
 * request that showed the key (a stream token, an open stream).
 */
export function keyTenants(
  tenantsByKey: ReadonlyMap<string, string>,
  tenants: TenantStore,
): (digest: string) => Promise<string | undefined> {
  const tenantsByDigest = new Map([...tenantsByKey].map(([key, tenant]) => [keyDigest(key), tenant]))
  return async (digest) => tenantsByDigest.get(digest) ?? (await tenants.authenticate(digest))?.tenant
}

/**
 * Bearer-key authentication for the scope it is registered in (every tenant route under
 * /v1). It runs on the route fastify matched, so no spelling of the path (percent-encoded,
 * absolute-form) reaches a handler without it. Static keys (AIRLOCK_API_KEYS) first,
 * then the keys issued through the admin API (in Redis, uncached, so a revocation holds
 * on every replica at once). Keys are looked up by their SHA-256, so the lookup's timing
 * says nothing about how much of a guessed key was right.
 */
export function registerAuth(
  scope: FastifyInstance,
  {
    tenantsByKey,
    streamTokens,
    tenants,
    failedKeys,
    claimConnection,
    turns,
    keyFrom = bearerKey,
    missingKey,
  }: AuthOptions,
): void {
  const tenantsByDigest = new Map([...tenantsByKey].map(([key, tenant]) => [keyDigest(key), tenant]))
  const tenantOf = keyTenants(tenantsByKey, tenants)
  scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    await authenticate(request, reply)
    const refused = claimConnection(request.raw.socket, request.tenant)
    if (refused) {
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_TOO_MANY_CONNECTIONS', refused, undefined, 1)
    }
    continueExpected(request.raw, reply.raw)
    // Its turn among the tenant's requests, given back however the request ends (answered,
    // cut, or a client gone while it waited). A request with a body takes it once the body
    // has come (the JSON parser asks): a slow upload holds no turn of its tenant's others.
    // A turn left can be taken again: an answer sent in pieces takes it for each piece it
    // reads, and leaves it while the client takes the piece.
    const res = reply.raw
    const tenant = request.tenant
    let turn: 'none' | 'waiting' | 'held' = 'none'
    let leave: LeaveTurn = NO_TURN
    let gone = false
    request.leaveTurn = () => {
      if (turn !== 'held') return
      turn = 'none'
      leave()
    }
    request.takeTurn = async () => {
      if (turn !== 'none' || gone) return
      turn = 'waiting'
      const left = await turns.enter(tenant)
      turn = 'held'
      leave = left
      if (gone) request.leaveTurn()
    }
    const away = () => {
      gone = true
      request.leaveTurn()
    }
    if (res.destroyed || request.raw.destroyed) away()
    else res.once('close', away)
    if (!announcesBody(request.headers)) await request.takeTurn()
  })
  // Whatever did not take its turn with its body (a GET sent with one, which no parser
  // reads) takes it here, before its handler: no request is worked on without one.
  scope.addHook('preValidation', async (request) => request.takeTurn())
  scope.addHook('onSend', async (request, _reply, payload) => {
    request.leaveTurn()
    return payload
  })
  scope.addHook('onRequestAbort', async (request) => request.leaveTurn())
  // A made-up key or token costs Redis a lookup; past its address's allowance, it is refused unasked.
  async function lookUp<T>(request: FastifyRequest, digest: string, ask: () => Promise<T | null | undefined>) {
    if (!failedKeys.mayLookUp(request.ip, digest))
      throw new AirlockError(
        'AIRLOCK_ERR_TOO_MANY_FAILED_KEYS',
        'this address sent too many keys or stream tokens that open nothing; retry in a second',
        undefined,
        1,
      )
    const found = await ask()
    if (found) failedKeys.found(digest)
    else failedKeys.failed(request.ip, digest)
    return found
  }
  async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization
    // A browser opening a job's stream authenticates with a single-use token instead.
    const query = request.query as { token?: unknown } | undefined
    if (!header && request.routeOptions.url === '/v1/jobs/:id/stream' && typeof query?.token === 'string') {
      const jobId = (request.params as { id?: string }).id ?? ''
      // Read here, used up by the stream route once the WebSocket is about to open: a plain
      // GET (a link preview, a prefetch) or a refused handshake leaves it usable.
      const token = query.token
      const grant = await lookUp(request, StreamTokens.digest(token), () => streamTokens.peek(token, jobId))
      if (!grant) throw invalidStreamToken()
      // A token is worth no more than the key that asked for it: revoked since, it opens nothing.
      if ((await tenantOf(grant.keyDigest)) !== grant.tenant)
        throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'the key this stream token was issued to has been revoked')
      const { tenant } = grant
      request.tenant = tenant
      request.keyRole = 'member'
      request.keyDigest = grant.keyDigest
      request.streamToken = query.token
      request.log = reply.log = bindRequestLog(request.log, { tenant })
      return
    }
    const key = keyFrom(request)
    if (!key)
      throw new AirlockError(
        'AIRLOCK_ERR_UNAUTHORIZED',
        missingKey ?? 'missing bearer token: send Authorization: Bearer <api key>',
      )
    const digest = keyDigest(key)
    request.keyDigest = digest
    const staticTenant = tenantsByDigest.get(digest)
    if (staticTenant) {
      request.tenant = staticTenant
      request.keyRole = 'admin'
    } else {
      const identity = await lookUp(request, digest, () => tenants.authenticate(digest))
      if (!identity) throw new AirlockError('AIRLOCK_ERR_UNAUTHORIZED', 'invalid or revoked API key')
      request.tenant = identity.tenant
      request.keyRole = identity.role
      void tenants.auditKeyUse(identity, `${request.method} ${request.routeOptions.url ?? '?'}`).catch(() => undefined)
    }
    request.log = reply.log = bindRequestLog(request.log, { tenant: request.tenant })
  }
}
