import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError } from '../../../../core/errors.js'
import { AuditListSchema } from '../../../../core/tenant-store.js'
import { errorResponses } from '../../../schemas.js'

/** The calling tenant's audit trail, for its admins (keys with the admin role). */
const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { tenants } = app.services
  app.get(
    '/',
    {
      schema: {
        operationId: 'getAudit',
        tags: ['tenant'],
        summary:
          "The calling tenant's audit trail (admin actions and key use), newest first; needs a key with the admin role",
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) }),
        response: { 200: AuditListSchema, ...errorResponses(400, 401, 403, 503) },
      },
    },
    async (request) => {
      if (request.keyRole !== 'admin')
        throw new AirlockError(
          'AIRLOCK_ERR_FORBIDDEN',
          "reading the audit trail needs a key with the tenant's admin role",
        )
      return { entries: await tenants.readAudit(request.tenant, request.query.limit ?? 100) }
    },
  )
}

export default auditRoutes
