import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { JobRequestSchema, unknownRuntimeError, type JobRequest } from '../../../../core/job-spec.js'
import { BatchIdempotencyKeyHeaderSchema, batchItemKey, IDEMPOTENCY_KEY_HEADER } from '../../../../core/idempotency.js'
import { BoundedValidator, ErrorBudget } from '../../../plugins/bounded-validator.js'
import { toErrorResponse, validationFailure } from '../../../plugins/error-handler.js'
import { errorResponses, ErrorResponseSchema } from '../../../schemas.js'
import { wholeBatchRefusal } from '../../../services/job-service.js'

const BatchItemSchema = Type.Union([
  Type.Object(
    {
      index: Type.Integer({ description: "The job's place in `jobs`, from 0" }),
      id: Type.String(),
      status: Type.Literal('queued'),
      replayed: Type.Optional(
        Type.Literal(true, {
          description: "The batch's Idempotency-Key had made this job already, from the same job request",
        }),
      ),
    },
    { title: 'JobBatchAccepted' },
  ),
  Type.Object({ index: Type.Integer(), error: ErrorResponseSchema }, { title: 'JobBatchRefused' }),
])

export const JobBatchResultSchema = Type.Object(
  {
    accepted: Type.Integer(),
    refused: Type.Integer(),
    items: Type.Array(BatchItemSchema, { description: 'One per job, in the order sent' }),
  },
  { title: 'JobBatchResult' },
)

const jobRequest = new BoundedValidator(JobRequestSchema)

/**
 * A job of a batch as POST /v1/jobs would take it, or the error it would have answered;
 * the batch's jobs share one budget for listing what is wrong with them.
 */
function checkedRequest(item: unknown, budget: ErrorBudget): JobRequest | Error {
  const unknown = unknownRuntimeError(item)
  if (unknown) return unknown
  const problems = jobRequest.problems(item, budget)
  return problems ? validationFailure(problems, 'body') : (item as JobRequest)
}

/**
 * POST /v1/jobs/batch: many jobs in one request, each accepted or refused on its own with
 * the code POST /v1/jobs would have given it. Every job is checked before any is written.
 */
const batchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config, jobService, metrics } = app.services
  app.post(
    '/batch',
    {
      schema: {
        operationId: 'submitJobBatch',
        tags: ['jobs'],
        summary: `Submit up to ${config.maxBatchJobs} jobs (AIRLOCK_MAX_BATCH_JOBS); each is accepted or refused on its own`,
        // The route checks the envelope only, so that a job that is not a JobRequest is
        // refused alone (with POST /v1/jobs's error) instead of failing the batch.
        body: Type.Object(
          {
            jobs: Type.Array(Type.Unknown({ description: 'A job as POST /v1/jobs takes it (JobRequest)' }), {
              minItems: 1,
              maxItems: config.maxBatchJobs,
            }),
          },
          { additionalProperties: false, title: 'JobBatch' },
        ),
        // One key for the batch: the job at each place has its own from it, so a batch sent
        // again makes the jobs it did not make the first time, and no other.
        headers: BatchIdempotencyKeyHeaderSchema,
        response: { 200: JobBatchResultSchema, ...errorResponses(400, 401, 408, 409, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const { jobs } = request.body
      const key = request.headers[IDEMPOTENCY_KEY_HEADER]
      const budget = new ErrorBudget()
      const outcomes = await jobService.submitMany(
        request.tenant,
        jobs.map((item) => checkedRequest(item, budget)),
        request.log,
        key === undefined ? undefined : jobs.map((_, index) => batchItemKey(key, index)),
      )
      const whole = wholeBatchRefusal(outcomes)
      if (whole) throw whole
      const items = outcomes.map((o, index) => {
        if ('id' in o)
          return { index, id: o.id, status: 'queued' as const, ...(o.replayed && { replayed: true as const }) }
        const { body, log } = toErrorResponse(o.error)
        if (log) request.log.error({ err: o.error, index }, 'a job of a batch was not taken')
        metrics.rejectedRequests.inc({ code: body.code })
        return { index, error: body }
      })
      const accepted = items.filter((i) => 'id' in i).length
      return { accepted, refused: items.length - accepted, items }
    },
  )
}

export default batchRoutes
