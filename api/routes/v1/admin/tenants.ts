import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError } from '../../../../core/errors.js'
import {
  AuditListSchema,
  KeyInfoSchema,
  KeyRoleSchema,
  QuotasSchema,
  TenantSchema,
} from '../../../../core/tenant-store.js'
import { errorResponses } from '../../../schemas.js'
import { ADMIN_SECURITY } from '../../../plugins/openapi.js'

const TenantName = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
  description: 'Letters, digits, _ . -; at most 64',
})
const NameParams = Type.Object({ name: TenantName })

/** Tenants, their keys and quotas (behind the admin credential of the parent plugin). Every change is audited. */
const tenantRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { tenants, config } = app.services
  /** Tenants of AIRLOCK_API_KEYS: they exist whether or not the admin API has touched them. */
  const statics = new Set(config.tenantsByKey.values())

  /**
   * Ensures a tenant has its record: a static one gets it the first time the admin API
   * acts on it (no quotas of its own, so the defaults still hold), so its quotas, keys and
   * audit are set the same way as a made tenant's. 404 for any other unknown name.
   */
  const mustExist = async (name: string) => {
    if (await tenants.exists(name)) return
    if (!statics.has(name)) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `no tenant ${name}`)
    if (await tenants.create(name, {}))
      await tenants.audit(name, 'admin', 'tenant.adopted', 'static (AIRLOCK_API_KEYS)')
  }

  app.post(
    '/',
    {
      schema: {
        operationId: 'createTenant',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: 'Create a tenant',
        body: Type.Object({ name: TenantName, quotas: Type.Optional(QuotasSchema) }, { additionalProperties: false }),
        response: { 201: TenantSchema, ...errorResponses(400, 401, 409, 503) },
      },
    },
    async (request, reply) => {
      const { name, quotas = {} } = request.body
      // A new tenant by the name of a static one would be handed that tenant's jobs.
      if (statics.has(name))
        throw new AirlockError(
          'AIRLOCK_ERR_TENANT_EXISTS',
          `tenant ${name} exists already, from AIRLOCK_API_KEYS: set its quotas with PUT /v1/admin/tenants/${name}/quotas`,
        )
      if (!(await tenants.create(name, quotas)))
        throw new AirlockError('AIRLOCK_ERR_TENANT_EXISTS', `tenant ${name} exists already`)
      await tenants.audit(name, 'admin', 'tenant.created', JSON.stringify(quotas))
      return reply
        .status(201)
        .header('location', `/v1/admin/tenants/${name}`)
        .send((await tenants.get(name))!)
    },
  )

  app.get(
    '/',
    {
      schema: {
        operationId: 'listTenants',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: 'List tenants',
        response: {
          200: Type.Object({ tenants: Type.Array(Type.String()) }, { title: 'TenantList' }),
          ...errorResponses(401, 503),
        },
      },
    },
    async () => ({ tenants: [...new Set([...(await tenants.list()), ...statics])].sort() }),
  )

  app.get(
    '/:name',
    {
      schema: {
        operationId: 'getTenant',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: 'A tenant, its quotas and keys (never the keys themselves)',
        params: NameParams,
        response: { 200: TenantSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      await mustExist(request.params.name)
      const tenant = await tenants.get(request.params.name)
      if (!tenant) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `no tenant ${request.params.name}`)
      return tenant
    },
  )

  app.put(
    '/:name/quotas',
    {
      schema: {
        operationId: 'setTenantQuotas',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: "Replace a tenant's quotas",
        params: NameParams,
        body: QuotasSchema,
        response: { 200: TenantSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      await mustExist(request.params.name)
      await tenants.setQuotas(request.params.name, request.body)
      await tenants.audit(request.params.name, 'admin', 'quotas.set', JSON.stringify(request.body))
      return (await tenants.get(request.params.name))!
    },
  )

  app.post(
    '/:name/keys',
    {
      schema: {
        operationId: 'issueKey',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: 'Issue an API key; the key is in this answer only',
        params: NameParams,
        body: Type.Object({ role: Type.Optional(KeyRoleSchema) }, { additionalProperties: false }),
        response: {
          201: Type.Object({ key: Type.String(), info: KeyInfoSchema }, { title: 'IssuedKey' }),
          ...errorResponses(400, 401, 404, 503),
        },
      },
    },
    async (request, reply) => {
      await mustExist(request.params.name)
      const issued = await tenants.issueKey(request.params.name, request.body.role ?? 'member')
      await tenants.audit(request.params.name, 'admin', 'key.issued', `${issued.info.keyId} (${issued.info.role})`)
      return reply.status(201).send(issued)
    },
  )

  app.delete(
    '/:name/keys/:keyId',
    {
      schema: {
        operationId: 'revokeKey',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: 'Revoke an API key; it stops working on every replica at once',
        params: Type.Object({ name: TenantName, keyId: Type.String({ maxLength: 64 }) }),
        response: { 204: Type.Null(), ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      if (!(await tenants.revokeKey(request.params.name, request.params.keyId)))
        throw new AirlockError(
          'AIRLOCK_ERR_NOT_FOUND',
          `no live key ${request.params.keyId} for tenant ${request.params.name}`,
        )
      await tenants.audit(request.params.name, 'admin', 'key.revoked', request.params.keyId)
      return reply.status(204).send(null)
    },
  )

  app.get(
    '/:name/audit',
    {
      schema: {
        operationId: 'getTenantAudit',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: "A tenant's audit trail, newest first",
        params: NameParams,
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) }),
        response: { 200: AuditListSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      await mustExist(request.params.name)
      return { entries: await tenants.readAudit(request.params.name, request.query.limit ?? 100) }
    },
  )
}

export default tenantRoutes
