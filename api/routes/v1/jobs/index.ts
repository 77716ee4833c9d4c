import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError, isAirlockError } from '../../../../core/errors.js'
import { JobAcceptedSchema, JobListSchema, JobSchema } from '../../../../core/job.js'
import { JobRequestSchema, unknownRuntimeError } from '../../../../core/job-spec.js'
import {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  IdempotencyKeyHeaderSchema,
} from '../../../../core/idempotency.js'
import { CURSOR_PATTERN } from '../../../../core/job-store.js'
import { JOB_STATUSES, type JobStatus } from '../../../../core/job-status.js'
import { ownJob } from './own-job.js'
import { callerGone } from '../../../services/job-service.js'
import { errorResponses, JobParams } from '../../../schemas.js'
import { bindRequestLog } from '../../../../core/logger.js'

// The schema is the whole check: any list of known statuses, spaces around commas allowed.
const STATUS_LIST_PATTERN = `^\\s*(${JOB_STATUSES.join('|')})\\s*(,\\s*(${JOB_STATUSES.join('|')})\\s*)*$`

const jobsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store, jobService, outputWriter } = app.services

  app.post(
    '/',
    {
      schema: {
        operationId: 'submitJob',
        tags: ['jobs'],
        summary: 'Submit a job',
        querystring: Type.Object({
          wait: Type.Optional(Type.Boolean({ description: 'Hold the request until the job ends' })),
        }),
        headers: IdempotencyKeyHeaderSchema,
        body: JobRequestSchema,
        response: {
          200: JobSchema,
          202: JobAcceptedSchema,
          ...errorResponses(400, 401, 403, 408, 409, 413, 415, 429, 503),
        },
      },
      preValidation: async (request) => {
        const unknown = unknownRuntimeError(request.body)
        if (unknown) throw unknown
      },
    },
    async (request, reply) => {
      const key = request.headers[IDEMPOTENCY_KEY_HEADER]
      const { id, spec, replayed } = await jobService.submit(request.tenant, request.body, request.log, key)
      request.log = reply.log = bindRequestLog(request.log, { jobId: id })
      if (replayed) reply.header(IDEMPOTENT_REPLAYED_HEADER, 'true')
      if (request.query.wait) {
        const gone = callerGone(reply)
        try {
          const done = await jobService.waitForEnd(id, request, spec, gone.signal)
          // Patient: the job has run; a 503 would have the client submit it again.
          if (done) return await outputWriter.sendJob(reply, 200, done, true)
        } catch (err) {
          if (isAirlockError(err) && err.code === 'AIRLOCK_ERR_UNAUTHORIZED') throw err
          // The job is accepted: a fault while waiting for it (Redis gone a moment) must
          // not answer 5xx, which says nothing was taken. Nothing was sent yet (sendJob
          // throws only then): the 202 below says where the job is.
          request.log.warn({ err }, 'waiting for the job failed; answered 202')
        } finally {
          gone.stop()
        }
      }
      // Where the job is read, as HTTP has 202 and 201 say.
      return reply
        .status(202)
        .header('location', `/v1/jobs/${id}`)
        .send({ id, status: 'queued' as const })
    },
  )

  app.get(
    '/',
    {
      schema: {
        operationId: 'listJobs',
        tags: ['jobs'],
        summary: "List the calling tenant's jobs, newest first",
        querystring: Type.Object({
          status: Type.Optional(
            Type.String({
              maxLength: 200,
              pattern: STATUS_LIST_PATTERN,
              description: `Comma-separated statuses to keep: ${JOB_STATUSES.join(', ')}`,
            }),
          ),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
          cursor: Type.Optional(
            Type.String({ pattern: CURSOR_PATTERN, description: 'nextCursor of the previous page' }),
          ),
        }),
        response: { 200: JobListSchema, ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => {
      const { status, limit, cursor } = request.query
      const statuses = status === undefined ? undefined : status.split(',').map((s) => s.trim())
      const unknown = statuses?.filter((s) => !(JOB_STATUSES as readonly string[]).includes(s)) ?? []
      if (unknown.length > 0) {
        throw new AirlockError(
          'AIRLOCK_ERR_VALIDATION',
          `unknown status ${JSON.stringify(unknown[0])}; one of ${JOB_STATUSES.join(', ')}`,
          [{ path: '/status', message: 'unknown status' }],
        )
      }
      return store.list(request.tenant, { statuses: statuses as JobStatus[] | undefined, limit: limit ?? 20, cursor })
    },
  )

  app.get(
    '/:id',
    {
      schema: {
        operationId: 'getJob',
        tags: ['jobs'],
        summary: 'Get a job',
        params: JobParams,
        response: { 200: JobSchema, ...errorResponses(401, 404, 503) },
      },
    },
    async (request, reply) => outputWriter.sendJob(reply, 200, await ownJob(store, request.params.id, request.tenant)),
  )

  app.get(
    '/:id/request',
    {
      schema: {
        operationId: 'getJobRequest',
        tags: ['jobs'],
        summary:
          'The job as it was submitted: runtime, files, entrypoint, arguments, stdin, tests, isolation, and its limits with defaults filled in (not env: its values may be secrets)',
        params: JobParams,
        response: { 200: JobRequestSchema, ...errorResponses(401, 404, 503) },
      },
    },
    async (request, reply) => outputWriter.sendRequest(reply, await ownJob(store, request.params.id, request.tenant)),
  )

  app.delete(
    '/:id',
    {
      schema: {
        operationId: 'cancelJob',
        tags: ['jobs'],
        summary: 'Cancel a queued or running job',
        params: JobParams,
        response: { 202: JobSchema, ...errorResponses(401, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const { id } = request.params
      await jobService.cancel(id, request.tenant)
      // 202: a running sandbox is being killed; the job turns `cancelled` shortly. Patient:
      // the cancel is made, and a 503 "retry" would be answered 409 (found by review 23).
      return outputWriter.sendJob(reply, 202, await ownJob(store, id, request.tenant), true)
    },
  )
}

export default jobsRoutes
