import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError } from '../../../../core/errors.js'
import { JobAcceptedSchema, JobListSchema, JobSchema } from '../../../../core/job.js'
import { JobRequestSchema, resolveJobSpec, unknownRuntimeError } from '../../../../core/job-spec.js'
import { CURSOR_PATTERN, newJobId } from '../../../../core/job-store.js'
import { isFinalStatus, JOB_STATUSES, type JobStatus } from '../../../../core/job-status.js'
import { isolationRefusal } from '../../../../core/worker-registry.js'
import { jobLimitsOverQuota, tenantLimitsPolicy } from '../../../../core/quotas.js'
import { ownJob } from './own-job.js'
import { errorResponses, JobParams } from '../../../schemas.js'

// The schema is the whole check: any list of known statuses, spaces around commas allowed.
const STATUS_LIST_PATTERN = `^\\s*(${JOB_STATUSES.join('|')})\\s*(,\\s*(${JOB_STATUSES.join('|')})\\s*)*$`

const jobsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store, queue, registry, waiter, config, metrics, tenants, outputWriter } = app.services


  app.post(
    '/',
    {
      schema: {
        operationId: 'submitJob', tags: ['jobs'], summary: 'Submit a job',
        querystring: Type.Object({ wait: Type.Optional(Type.Boolean({ description: 'Hold the request until the job ends' })) }),
        body: JobRequestSchema,
        response: { 200: JobSchema, 202: JobAcceptedSchema, ...errorResponses(400, 401, 403, 408, 413, 415, 429, 503) },
      },
      preValidation: async (request) => {
        const unknown = unknownRuntimeError(request.body)
        if (unknown) throw unknown
      },
    },
    async (request, reply) => {
      const quotas = await tenants.quotas(request.tenant)
      const spec = resolveJobSpec(request.body, tenantLimitsPolicy(config, quotas))
      const tooBig = jobLimitsOverQuota(spec.limits, quotas)
      if (tooBig.length > 0) {
        throw new AirlockError('AIRLOCK_ERR_QUOTA_JOB_LIMITS', `limits above this tenant's quota: ${tooBig.map((d) => d.path.slice(8)).join(', ')}`, tooBig)
      }
      const perSecond = quotas.submitsPerSecond ?? config.defaultSubmitsPerSecond
      if (perSecond > 0) {
        const waitMs = await tenants.takeSubmission(request.tenant, perSecond)
        if (waitMs > 0) {
          reply.header('retry-after', String(Math.max(1, Math.ceil(waitMs / 1000))))
          throw new AirlockError('AIRLOCK_ERR_QUOTA_RATE', `more than ${perSecond} submissions per second for this tenant; retry after ${waitMs} ms`)
        }
      }
      if (spec.isolation === 'runc' && !config.benchTenantSet.has(request.tenant)) {
        throw new AirlockError('AIRLOCK_ERR_ISOLATION_FORBIDDEN', 'isolation runc (no gVisor) is only for benchmark tenants (AIRLOCK_BENCH_TENANTS)', [{ path: '/isolation', message: 'not allowed for this tenant' }])
      }
      const refusal = isolationRefusal(await registry.live())
      if (refusal) throw new AirlockError('AIRLOCK_ERR_ISOLATION_UNAVAILABLE', refusal)

      const id = newJobId()
      const created = await store.create(id, request.tenant, spec)
      if (created.result === 'queued-quota') {
        reply.header('retry-after', '1')
        throw new AirlockError('AIRLOCK_ERR_QUOTA_QUEUED', `this tenant has its quota of ${quotas.maxQueued ?? config.defaultMaxQueued} queued jobs; wait for some to start`)
      }
      if (created.result === 'storage-quota') {
        const max = quotas.maxStoredBytes ?? config.defaultMaxStoredBytes
        throw new AirlockError(
          'AIRLOCK_ERR_QUOTA_STORAGE',
          `this job would take this tenant past its storage quota (${created.heldBytes} of ${max} bytes held; a job reserves its input, twice limits.outputBytes and AIRLOCK_ARTIFACT_BYTES until it ends, and a finished job frees its bytes when it expires)`,
        )
      }
      try {
        await queue.add('run', { jobId: id }, { jobId: id, removeOnComplete: true, removeOnFail: true })
      } catch (err) {
        // Never answer 202 for a job no worker will see.
        await store.remove(id, request.tenant).catch(() => undefined)
        throw err
      }
      request.log = reply.log = request.log.child({ jobId: id })
      request.log.info({ runtime: spec.runtime }, 'job accepted')
      metrics.jobsSubmitted.inc({ runtime: spec.runtime, tenant: metrics.tenant(request.tenant) })

      if (request.query.wait) {
        await waiter.ready()
        const waitMs = Math.min(config.maxWaitMs, spec.limits.timeoutMs + 60_000)
        const abort = new AbortController()
        request.raw.once('close', () => abort.abort())
        const { finished } = waiter.wait(id, waitMs, abort.signal)
        const now = await store.view(id)
        if (!(now && isFinalStatus(now.status))) await finished
        const done = await store.view(id)
        if (done && isFinalStatus(done.status)) return outputWriter.sendJob(reply, 200, done)
      }
      // Where the job is read, as HTTP has 202 and 201 say.
      return reply.status(202).header('location', `/v1/jobs/${id}`).send({ id, status: 'queued' as const })
    },
  )

  app.get(
    '/',
    {
      schema: {
        operationId: 'listJobs', tags: ['jobs'], summary: "List the calling tenant's jobs, newest first",
        querystring: Type.Object({
          status: Type.Optional(Type.String({ maxLength: 200, pattern: STATUS_LIST_PATTERN, description: `Comma-separated statuses to keep: ${JOB_STATUSES.join(', ')}` })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
          cursor: Type.Optional(Type.String({ pattern: CURSOR_PATTERN, description: 'nextCursor of the previous page' })),
        }),
        response: { 200: JobListSchema, ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => {
      const { status, limit, cursor } = request.query
      const statuses = status === undefined ? undefined : status.split(',').map((s) => s.trim())
      const unknown = statuses?.filter((s) => !(JOB_STATUSES as readonly string[]).includes(s)) ?? []
      if (unknown.length > 0) {
        throw new AirlockError('AIRLOCK_ERR_VALIDATION', `unknown status ${JSON.stringify(unknown[0])}; one of ${JOB_STATUSES.join(', ')}`, [{ path: '/status', message: 'unknown status' }])
      }
      return store.list(request.tenant, { statuses: statuses as JobStatus[] | undefined, limit: limit ?? 20, cursor })
    },
  )

  app.get(
    '/:id',
    { schema: { operationId: 'getJob', tags: ['jobs'], summary: 'Get a job', params: JobParams, response: { 200: JobSchema, ...errorResponses(401, 404, 503) } } },
    async (request, reply) => outputWriter.sendJob(reply, 200, await ownJob(store, request.params.id, request.tenant)),
  )

  app.delete(
    '/:id',
    {
      schema: {
        operationId: 'cancelJob', tags: ['jobs'], summary: 'Cancel a queued or running job',
        params: JobParams,
        response: { 202: JobSchema, ...errorResponses(401, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const { id } = request.params
      const view = await ownJob(store, id, request.tenant)
      const result = await store.cancel(id, request.tenant)
      if (result.kind === 'missing') throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
      if (result.kind === 'finished') throw new AirlockError('AIRLOCK_ERR_JOB_FINISHED', `job ${id} already ended with status ${result.status}`)
      if (result.kind === 'cancelled') {
        await queue.remove(id).catch(() => undefined)
        metrics.jobsFinished.inc({ runtime: view.job.runtime, tenant: metrics.tenant(request.tenant), status: 'cancelled' })
      }
      // 202: a running sandbox is being killed; the job turns `cancelled` shortly.
      return outputWriter.sendJob(reply, 202, await ownJob(store, id, request.tenant))
    },
  )
}

export default jobsRoutes
