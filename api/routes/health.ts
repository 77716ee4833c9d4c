import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { isolationRefusal } from '../../core/worker-registry.js'

const ReadySchema = Type.Object(
  { ready: Type.Boolean(), checks: Type.Record(Type.String(), Type.String()) },
  { title: 'Readiness' },
)

/** Liveness and readiness; readiness says why it is not ready. */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const readiness = sharedReadiness(app)
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
      const { ready, checks } = await readiness()
      return reply.status(ready ? 200 : 503).send({ ready, checks })
    },
  )
}

interface Readiness {
  ready: boolean
  checks: Record<string, string>
}

/**
 * How long a readiness answer is given again. Anyone may ask without a key, and each fresh
 * answer costs Redis four commands on the connection tenants' reads use: a keyless flood of
 * `/readyz` would have queued ahead of every tenant's reads.
 */
const READINESS_FRESH_MS = 1000

/** One check at a time, its answer given to every ask while it runs and for a second after. */
function sharedReadiness(app: FastifyInstance): () => Promise<Readiness> {
  let last: { answer: Promise<Readiness>; settledAt?: number } | undefined
  return () => {
    const now = performance.now()
    if (last && (last.settledAt === undefined || now - last.settledAt < READINESS_FRESH_MS)) return last.answer
    const current: { answer: Promise<Readiness>; settledAt?: number } = { answer: checkReadiness(app) }
    void current.answer.then(() => {
      current.settledAt = performance.now()
    })
    last = current
    return current.answer
  }
}

async function checkReadiness(app: FastifyInstance): Promise<Readiness> {
  const checks: Record<string, string> = {}
  try {
    await app.services.redis.ping()
    checks.redis = 'ok'
    const workers = await app.services.registry.live()
    const refusal = isolationRefusal(workers)
    if (refusal) {
      checks.isolation = refusal
      return { ready: false, checks }
    }
    checks.isolation =
      workers.length === 0
        ? 'no live worker yet; jobs will queue'
        : `ok (${workers.filter((w) => w.isolation.ok).length} worker(s) can isolate)`
    return { ready: true, checks }
  } catch (err) {
    // The error names Redis's address (ECONNREFUSED) or its auth (WRONGPASS): the log has it,
    // not an answer anyone may ask for.
    app.log.warn({ err }, 'readiness: Redis unreachable')
    checks.redis = 'unreachable'
    return { ready: false, checks }
  }
}

export default healthRoutes
