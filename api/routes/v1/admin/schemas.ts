import { Type } from '@fastify/type-provider-typebox'
import { QuotasSchema, TenantUsageSchema } from '../../../../core/tenant-store.js'

/**
 * The admin API's answers (apart from tenants', which core/tenant-store.ts defines); the console's types come from
 * these.
 */
export const WorkerSchema = Type.Object(
  {
    id: Type.String(),
    executor: Type.String(),
    isolation: Type.Object({
      ok: Type.Boolean(),
      technology: Type.String(),
      detail: Type.String(),
      reason: Type.Union([Type.String(), Type.Null()]),
    }),
    runtimes: Type.Record(Type.String(), Type.String()),
    lastSeenMs: Type.Integer({ description: 'Milliseconds since the worker last reported' }),
  },
  { title: 'Worker' },
)

export const QueueStateSchema = Type.Object(
  {
    counts: Type.Record(Type.String(), Type.Integer()),
    oldestQueuedAgeMs: Type.Union([Type.Integer(), Type.Null()]),
    workers: Type.Array(WorkerSchema),
  },
  { title: 'QueueState' },
)

export const UsageReportSchema = Type.Object(
  {
    defaults: Type.Object(
      { maxRunning: Type.Integer(), maxQueued: Type.Integer(), maxStoredBytes: Type.Integer() },
      { description: 'Server-wide quotas of tenants without their own; 0 is no limit' },
    ),
    tenants: Type.Array(
      Type.Object({
        name: Type.String(),
        source: Type.Union([Type.Literal('admin'), Type.Literal('static')], {
          description:
            'admin: made through the admin API; static: a tenant of AIRLOCK_API_KEYS (whose quotas and keys the admin API may still set)',
        }),
        quotas: QuotasSchema,
        usage: TenantUsageSchema,
      }),
    ),
  },
  { title: 'UsageReport' },
)

export const MetricsSnapshotSchema = Type.Object(
  {
    at: Type.String({ format: 'date-time' }),
    metrics: Type.Array(
      Type.Object({
        name: Type.String(),
        help: Type.String(),
        type: Type.String({ description: 'counter, gauge, histogram or summary' }),
        values: Type.Array(
          Type.Object({
            labels: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()])),
            value: Type.Number(),
            metricName: Type.Optional(
              Type.String({ description: 'For histograms: the series (_bucket, _sum, _count)' }),
            ),
          }),
        ),
      }),
    ),
  },
  { title: 'MetricsSnapshot' },
)
