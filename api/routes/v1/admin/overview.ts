import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { tenantDefaults } from '../../../../core/quotas.js'
import { MetricsSnapshotSchema, UsageReportSchema } from './schemas.js'
import { errorResponses } from '../../../schemas.js'
import { ADMIN_SECURITY } from '../../../plugins/openapi.js'

/** What the operations view reads: every tenant's usage against its quotas, and this process's metrics. */
const overviewRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, tenants, store, metrics } = app.services

  app.get(
    '/usage',
    {
      schema: {
        operationId: 'getUsage',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: "Every tenant's quotas and what it holds now (queued, running, stored bytes)",
        response: { 200: UsageReportSchema, ...errorResponses(401, 503) },
      },
    },
    async () => {
      const made = new Set(await tenants.list())
      const statics = new Set(config.tenantsByKey.values())
      const names = [...new Set([...made, ...statics])].sort()
      const rows = await Promise.all(
        names.map(async (name) => ({
          name,
          source: statics.has(name) ? ('static' as const) : ('admin' as const),
          quotas: made.has(name) ? await tenants.quotas(name) : {},
          usage: await store.usage(name),
        })),
      )
      return { defaults: tenantDefaults(config), tenants: rows }
    },
  )

  // The same numbers as /metrics, for a page that holds the admin key (the metrics
  // listener is private and a browser cannot reach it).
  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'getMetricsSnapshot',
        tags: ['admin'],
        security: ADMIN_SECURITY,
        summary: "This process's metrics (as /metrics has them), as JSON",
        response: { 200: MetricsSnapshotSchema, ...errorResponses(401, 503) },
      },
    },
    async () => {
      const families = await metrics.registry.getMetricsAsJSON()
      return {
        at: new Date().toISOString(),
        metrics: families.map((f) => ({
          name: f.name,
          help: f.help,
          type: String(f.type),
          values: f.values
            .filter((v) => Number.isFinite(v.value))
            .map((v) => ({
              labels: { ...(v.labels as Record<string, string | number>) },
              value: v.value,
              ...('metricName' in v && v.metricName ? { metricName: String(v.metricName) } : {}),
            })),
        })),
      }
    },
  )
}

export default overviewRoutes
