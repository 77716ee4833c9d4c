import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError } from '../../../../core/errors.js'
import { errorResponses } from '../../../schemas.js'
import { ADMIN_SECURITY } from '../../../plugins/openapi.js'
import { continueExpected } from '../../../plugins/error-handler.js'
import { readQueueState } from '../../../services/queue-state.js'
import { QueueStateSchema } from './schemas.js'
import tenantRoutes from './tenants.js'
import overviewRoutes from './overview.js'
import { now as clockNow } from '../../../../core/clock.js'

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Operator endpoints, behind AIRLOCK_ADMIN_KEY (not tenant keys). */
const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, queue, registry } = app.services
  const adminDigest = config.adminKey ? digest(config.adminKey) : undefined

  app.addHook('onRequest', async (request, reply) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
    if (!adminDigest || !m || !timingSafeEqual(digest(m[1]!), adminDigest)) {
      throw new AirlockError(
        'AIRLOCK_ERR_UNAUTHORIZED',
        adminDigest ? 'admin routes need the admin key' : 'admin routes are disabled: AIRLOCK_ADMIN_KEY is not set',
      )
    }
    request.operator = true
    // An operator's connection is nobody's, but no longer one to close first at the cap.
    app.services.claimConnection(request.raw.socket, undefined)
    continueExpected(request.raw, reply.raw)
  })
  await app.register(tenantRoutes, { prefix: '/tenants' })
  await app.register(overviewRoutes)

  app.get(
    '/queue',
    {
      schema: {
        operationId: 'getQueue',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: 'Queue state: jobs by state, age of the oldest waiting job, live workers',
        response: {
          200: QueueStateSchema,
          ...errorResponses(401, 503),
        },
      },
    },
    async () => {
      const [state, workers] = await Promise.all([readQueueState(queue), registry.live()])
      return {
        ...state,
        workers: workers.map(({ at, ...w }) => ({ ...w, lastSeenMs: Math.max(0, clockNow() - at) })),
      }
    },
  )
}

export default adminRoutes
