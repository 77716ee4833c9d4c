import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { isolationRefusal } from '../../core/worker-registry.js'

const ReadySchema = Type.Object(
  { ready: Type.Boolean(), checks: Type.Record(Type.String(), Type.String()) },
  { title: 'Readiness' },
)

/** Liveness and readiness; readiness says why it is not ready. */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Liveness: the process is up',
        security: [],
        response: { 200: Type.Object({ ok: Type.Boolean() }, { title: 'Health' }) },
      },
    },
    async () => ({ ok: true }),
  )

  // Tenant names and counts: on the metrics listener (AIRLOCK_METRICS_HOST:PORT), and on
  // the public port only where an operator says that port is private.
  if (app.services.config.metricsOnApiPort === 'true') {
    app.get(
      '/metrics',
      {
        schema: {
          operationId: 'getMetrics',
          tags: ['health'],
          summary: 'Prometheus metrics (only with AIRLOCK_METRICS_ON_API_PORT=true)',
          security: [],
          response: {
            200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
          },
        },
      },
      async (_request, reply) => {
        const { registry } = app.services.metrics
        return reply.type(registry.contentType).send(await registry.metrics())
      },
    )
  }

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'getReadiness',
        tags: ['health'],
        summary: 'Readiness: Redis reachable and workers able to isolate; says why not',
        security: [],
        response: { 200: ReadySchema, 503: ReadySchema },
      },
    },
    async (_request, reply) => {
      const checks: Record<string, string> = {}
      let ready = true
      try {
        await app.services.redis.ping()
        checks.redis = 'ok'
        const workers = await app.services.registry.live()
        const refusal = isolationRefusal(workers)
        if (refusal) {
          ready = false
          checks.isolation = refusal
        } else {
          checks.isolation =
            workers.length === 0
              ? 'no live worker yet; jobs will queue'
              : `ok (${workers.filter((w) => w.isolation.ok).length} worker(s) can isolate)`
        }
      } catch (err) {
        ready = false
        checks.redis = `unreachable: ${(err as Error).message}`
      }
      return reply.status(ready ? 200 : 503).send({ ready, checks })
    },
  )
}

export default healthRoutes
