import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AirlockError, isAirlockError } from '../../../core/errors.js'
import type { JobRequest } from '../../../core/job-spec.js'
import { LIST_SCAN_MAX } from '../../../core/job-store.js'
import { tenantLimitsPolicy } from '../../../core/quotas.js'
import { bearerKey, registerAuth } from '../../plugins/auth.js'
import { ownJob } from '../../routes/v1/jobs/own-job.js'
import { ErrorBudget } from '../../plugins/bounded-validator.js'
import { callerGone, wholeBatchRefusal } from '../../services/job-service.js'
import { MAX_PATH_PARAM_LENGTH } from '../../schemas.js'
import { findLanguage, JUDGE0_VERSION, languageDetail, LANGUAGES, runtimeVersions, STATUSES } from './catalog.js'
import { attributeErrors, Judge0Error, registerJudge0Errors, type FieldErrors } from './errors.js'
import { submissionJson, submissionsJson, type SubmissionJsonOptions } from './submission-json.js'
import { ATTRIBUTE_DESCRIPTIONS, checkSubmission, SubmissionSchema, toJobRequest } from './submission-request.js'
import { selectFields } from './submission-result.js'
import { bindRequestLog } from '../../../core/logger.js'
import {
  BatchIdempotencyKeyHeaderSchema,
  batchItemKey,
  IDEMPOTENCY_KEY_HEADER,
  IdempotencyKeyHeaderSchema,
  IDEMPOTENT_REPLAYED_HEADER,
} from '../../../core/idempotency.js'

/**
 * A drop-in Judge0 CE 1.13 API under /judge0: Judge0's routes, attributes, statuses and
 * error shapes, translated onto Airlock's jobs through the one job service. A token is
 * the job's id. What Judge0 does that Airlock will not (network, callbacks, compiler
 * options, extra files) is refused with Judge0's 422; docs/judge0.md says what differs.
 *
 * The routes are hidden from Airlock's OpenAPI document: they are Judge0's API, which
 * Judge0 documents, and the document describes Airlock's own.
 */

/** Judge0's default MAX_SUBMISSION_BATCH_SIZE. */
const MAX_BATCH = 20
/** Submissions before a page of the list, at most: each page before it is a read of the store. */
const MAX_LIST_DEPTH = 2000
/** Reads of the store that skipping to a page may take (each stops at the store's scan bound). */
const SKIP_READS = Math.ceil(MAX_LIST_DEPTH / LIST_SCAN_MAX) + 1
const JSON_TYPE = 'application/json; charset=utf-8'

const Token = Type.Object({ token: Type.String({ minLength: 1, maxLength: MAX_PATH_PARAM_LENGTH }) })
const Base64Query = {
  base64_encoded: Type.Optional(
    Type.Boolean({ description: 'Text attributes are base64 (default false, as in Judge0 CE 1.13)' }),
  ),
}
const FieldsQuery = {
  fields: Type.Optional(Type.String({ maxLength: 1000, description: 'Comma-separated attributes, or * for all' })),
}
const ErrorBody = Type.Object(
  { error: Type.String(), code: Type.Optional(Type.String()) },
  { additionalProperties: true },
)
const hidden = { hide: true }

/** Judge0's X-Auth-Token (its default AUTHN_HEADER), else Airlock's Authorization: Bearer. */
function judge0Key(request: FastifyRequest): string | undefined {
  const header = request.headers['x-auth-token']
  const token = typeof header === 'string' ? header.trim() : undefined
  // Both, perhaps naming two tenants: a proxy acting on the one we do not would disagree on who calls.
  if (token && request.headers.authorization !== undefined)
    throw new AirlockError('AIRLOCK_ERR_BAD_REQUEST', 'send the API key once: X-Auth-Token or Authorization, not both')
  return token ? token : bearerKey(request)
}

const judge0Routes: FastifyPluginAsyncTypebox = async (app) => {
  const {
    config,
    jobService,
    store,
    outputWriter,
    registry,
    tenants,
    metrics,
    streamTokens,
    claimConnection,
    turns,
    failedKeys,
  } = app.services
  // Judge0's bound, or this server's for every batch route if it is lower.
  const maxBatch = Math.min(MAX_BATCH, config.maxBatchJobs)
  // Every route here, /about and /languages too, needs a key: nothing is served to
  // anonymous callers, and a Judge0 client sends its token on every request anyway.
  registerAuth(app as unknown as FastifyInstance, {
    tenantsByKey: config.tenantsByKey,
    streamTokens,
    tenants,
    failedKeys,
    claimConnection,
    turns,
    keyFrom: judge0Key,
    missingKey: 'missing API key: send X-Auth-Token: <api key> (or Authorization: Bearer <api key>)',
  })
  registerJudge0Errors(app as unknown as FastifyInstance, metrics, ATTRIBUTE_DESCRIPTIONS)

  /** How to write submissions for this request (fields, base64, language names). */
  async function writeOptions(
    query: { fields?: string | undefined; base64_encoded?: boolean | undefined },
    forceBase64 = false,
  ): Promise<SubmissionJsonOptions> {
    const { fields, invalid } = selectFields(query.fields)
    if (invalid.length > 0) throw new Judge0Error(400, { error: `invalid fields: [${invalid.join(', ')}]` })
    const version = fields.includes('language') ? await runtimeVersions(registry) : undefined
    return {
      fields,
      base64: forceBase64 || query.base64_encoded === true,
      languageName: (id) => {
        const language = findLanguage(id)
        return language && version ? language.label(version(language.runtime)) : null
      },
    }
  }

  /** The tenant's jobs of `ids`, each read when asked for; undefined (or skipped) for one that is not its. */
  async function* ownJobs(ids: readonly string[], tenant: string, skipMissing = false) {
    for (const id of ids) {
      const view = await outputWriter.inTurn(() => ownJob(store, id, tenant).catch(notFoundAsUndefined))
      if (view || !skipMissing) yield view
    }
  }

  function send(reply: FastifyReply, status: number, parts: AsyncGenerator<string>): Promise<void> {
    return outputWriter.send(reply, status, JSON_TYPE, parts)
  }

  /**
   * A 4xx of the job service for one submission, as Judge0 would say it in a batch, with
   * Airlock's code beside it as a single submit's error has (a 5xx is thrown on).
   */
  function batchError(err: unknown): FieldErrors | { error: string; code?: string } {
    if (err instanceof Judge0Error) return err.body
    if (isAirlockError(err) && err.statusCode < 500) {
      return err.statusCode === 400 ? attributeErrors(err.details, err.message) : { error: err.message, code: err.code }
    }
    throw err
  }

  app.post(
    '/submissions',
    {
      schema: {
        ...hidden,
        querystring: Type.Object({
          ...Base64Query,
          ...FieldsQuery,
          wait: Type.Optional(Type.Boolean({ description: 'Answer once the submission has ended' })),
        }),
        body: SubmissionSchema,
        // Not Judge0's: Airlock's, as POST /v1/jobs takes it (a retry gets the token it had).
        headers: IdempotencyKeyHeaderSchema,
      },
    },
    async (request, reply) => {
      const { request: job } = toJobRequest(request.body, request.query.base64_encoded === true)
      // Checked before anything is queued: a bad `fields` must not leave a job behind.
      const options = request.query.wait ? await writeOptions(request.query) : undefined
      const key = request.headers[IDEMPOTENCY_KEY_HEADER]
      const { id, spec, replayed } = await jobService.submit(request.tenant, job, request.log, key)
      request.log = reply.log = bindRequestLog(request.log, { jobId: id })
      if (replayed) reply.header(IDEMPOTENT_REPLAYED_HEADER, 'true')
      if (!options) return reply.status(201).send({ token: id })
      const gone = callerGone(reply)
      try {
        // Judge0 answers a wait with the submission as it is then; past our wait it is still running.
        const view =
          (await jobService.waitForEnd(id, request, spec, gone.signal)) ?? (await ownJob(store, id, request.tenant))
        // Patient: the job has run; a 503 would have the client submit it again.
        return await send(reply, 201, submissionJson(view, outputWriter, options, true))
      } catch (err) {
        if (isAirlockError(err) && err.code === 'AIRLOCK_ERR_UNAUTHORIZED') throw err
        // Accepted all the same: its token, as a submission without wait is answered,
        // never a 5xx that says retry (nothing was sent yet: send throws only then).
        request.log.warn({ err }, 'waiting for the submission failed; answered with its token')
        return reply.status(201).send({ token: id })
      } finally {
        gone.stop()
      }
    },
  )

  app.post(
    '/submissions/batch',
    {
      schema: {
        ...hidden,
        querystring: Type.Object({ ...Base64Query }),
        body: Type.Object(
          { submissions: Type.Array(Type.Unknown(), { description: `At most ${maxBatch} submissions` }) },
          { additionalProperties: false },
        ),
        headers: BatchIdempotencyKeyHeaderSchema,
      },
    },
    async (request, reply) => {
      const { submissions } = request.body
      if (submissions.length === 0)
        throw new Judge0Error(400, { error: 'there should be at least one submission in a batch' })
      if (submissions.length > maxBatch)
        throw new Judge0Error(400, {
          error: `number of submissions in a batch should be less than or equal to ${maxBatch}`,
        })
      const base64 = request.query.base64_encoded === true
      const budget = new ErrorBudget()
      // Each is checked on its own, as Judge0 saves each: one bad submission is an error in
      // its place, not a refusal of the others. Those that pass go to Redis together.
      const items = submissions.map((item): JobRequest | Error => {
        try {
          return toJobRequest(checkSubmission(item, budget), base64).request
        } catch (err) {
          return err as Error
        }
      })
      const key = request.headers[IDEMPOTENCY_KEY_HEADER]
      const outcomes = await jobService.submitMany(
        request.tenant,
        items,
        request.log,
        key === undefined ? undefined : items.map((_, index) => batchItemKey(key, index)),
      )
      const whole = wholeBatchRefusal(outcomes)
      if (whole) throw whole
      const taken = outcomes.some((o) => 'id' in o)
      const answers = outcomes.map((o): { token: string } | FieldErrors | { error: string } => {
        if ('id' in o) return { token: o.id }
        const err = o.error
        // Once one is queued the answer must carry its token, or a retry would run it twice:
        // a fault of ours on another one is that one's error.
        if (taken && !(isAirlockError(err) && err.statusCode < 500) && !(err instanceof Judge0Error)) {
          request.log.error({ err }, 'a submission of a batch could not be created')
          return {
            error: 'this submission could not be created (a fault of the server); the others were: retry only this one',
          }
        }
        return batchError(err)
      })
      return reply.status(answers.some((a) => 'token' in a) ? 201 : 422).send(answers)
    },
  )

  app.get(
    '/submissions/batch',
    {
      schema: {
        ...hidden,
        querystring: Type.Object({
          ...Base64Query,
          ...FieldsQuery,
          tokens: Type.Optional(Type.String({ maxLength: maxBatch * (MAX_PATH_PARAM_LENGTH + 1) })),
        }),
      },
    },
    async (request, reply) => {
      const tokens = (request.query.tokens ?? '')
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '')
      if (tokens.length === 0)
        throw new Judge0Error(400, { error: 'there should be at least one submission in a batch' })
      if (tokens.length > maxBatch)
        throw new Judge0Error(400, {
          error: `number of submissions in a batch should be less than or equal to ${maxBatch}`,
        })
      // Judge0 answers a token listed twice twice; here each answer streams the whole job,
      // so one request naming a big job 20 times read it 20 times: each token once.
      const repeated = tokens.find((token, i) => tokens.indexOf(token) !== i)
      if (repeated !== undefined)
        throw new Judge0Error(400, {
          error: `submission ${repeated} is listed more than once in a batch; list each once`,
        })
      const options = await writeOptions(request.query)
      return send(reply, 200, submissionsJson(ownJobs(tokens, request.tenant), outputWriter, options))
    },
  )

  app.get(
    '/submissions',
    {
      schema: {
        ...hidden,
        querystring: Type.Object({
          ...Base64Query,
          ...FieldsQuery,
          page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
        }),
      },
    },
    async (request, reply) => {
      const page = request.query.page ?? 1
      const perPage = request.query.per_page ?? 20
      // Earlier pages are walked to reach this one: how deep one request may reach is bounded.
      if ((page - 1) * perPage > MAX_LIST_DEPTH)
        throw new Judge0Error(400, {
          error: `page ${page} of ${perPage} is past the newest ${MAX_LIST_DEPTH} submissions this list reaches; GET /v1/jobs pages by cursor through all of them`,
        })
      const options = await writeOptions(request.query)
      // Judge0 pages by number; the store by cursor: the submissions before this page are
      // skipped in as few reads as the store allows (one, unless it stops at its scan bound),
      // not a read per page before it (page 1000 of 1 was 1,000 reads of 200 records each).
      let cursor: string | undefined
      let skip = (page - 1) * perPage
      let reached = true
      for (let reads = 0; skip > 0; reads++) {
        const before = reads < SKIP_READS ? await store.list(request.tenant, { limit: skip, cursor }) : undefined
        if (!before?.nextCursor) {
          reached = false
          break
        }
        skip -= before.items.length
        cursor = before.nextCursor
      }
      const list = reached ? await store.list(request.tenant, { limit: perPage, cursor }) : undefined
      const items = list?.items ?? []
      const meta = {
        current_page: page,
        next_page: list?.nextCursor ? page + 1 : null,
        prev_page: page > 1 ? page - 1 : null,
        total_pages: null,
        total_count: null,
      }
      return send(
        reply,
        200,
        submissionsJson(
          ownJobs(
            items.map((item) => item.id),
            request.tenant,
            true,
          ),
          outputWriter,
          options,
          meta,
        ),
      )
    },
  )

  app.get(
    '/submissions/:token',
    { schema: { ...hidden, params: Token, querystring: Type.Object({ ...Base64Query, ...FieldsQuery }) } },
    async (request, reply) => {
      const options = await writeOptions(request.query)
      const view = await ownJob(store, request.params.token, request.tenant)
      return send(reply, 200, submissionJson(view, outputWriter, options))
    },
  )

  app.delete(
    '/submissions/:token',
    { schema: { ...hidden, params: Token, querystring: Type.Object({ ...FieldsQuery }) } },
    async (request, reply) => {
      const options = await writeOptions(request.query, true)
      // Judge0 deletes an ended submission; Airlock cancels one that has not ended (a
      // finished job is kept until it expires): 409 for one that had ended.
      await jobService.cancel(request.params.token, request.tenant)
      const view = await ownJob(store, request.params.token, request.tenant)
      // Patient: the cancel is made; a 503 "retry" would be answered 409.
      return send(reply, 200, submissionJson(view, outputWriter, options, true))
    },
  )

  const LanguageSummary = Type.Object({ id: Type.Integer(), name: Type.String() })
  app.get('/languages', { schema: { ...hidden, response: { 200: Type.Array(LanguageSummary) } } }, async () => {
    const version = await runtimeVersions(registry)
    return LANGUAGES.map((l) => ({ id: l.id, name: l.label(version(l.runtime)) }))
  })

  app.get(
    '/languages/:id',
    {
      schema: {
        ...hidden,
        params: Type.Object({ id: Type.Integer({ minimum: 0 }) }),
        response: {
          200: Type.Object({
            id: Type.Integer(),
            name: Type.String(),
            is_archived: Type.Boolean(),
            source_file: Type.String(),
            compile_cmd: Type.Union([Type.String(), Type.Null()]),
            run_cmd: Type.String(),
          }),
          404: ErrorBody,
        },
      },
    },
    async (request) => {
      const language = findLanguage(request.params.id)
      if (!language) throw new Judge0Error(404, { error: `language with id ${request.params.id} doesn't exist` })
      return languageDetail(language, (await runtimeVersions(registry))(language.runtime))
    },
  )

  app.get(
    '/statuses',
    {
      schema: {
        ...hidden,
        response: { 200: Type.Array(Type.Object({ id: Type.Integer(), description: Type.String() })) },
      },
    },
    async () => Object.values(STATUSES),
  )

  app.get(
    '/about',
    {
      schema: {
        ...hidden,
        response: {
          200: Type.Object({
            version: Type.String(),
            homepage: Type.Null(),
            source_code: Type.Null(),
            maintainer: Type.String(),
          }),
        },
      },
    },
    async () => ({
      version: JUDGE0_VERSION,
      homepage: null,
      source_code: null,
      maintainer: `Airlock, speaking the Judge0 CE ${JUDGE0_VERSION} API`,
    }),
  )

  app.get('/config_info', { schema: { ...hidden } }, async (request) => {
    const quotas = await tenants.quotas(request.tenant)
    return configInfo(tenantLimitsPolicy(config, quotas), quotas)
  })

  /**
   * Judge0's configuration attributes, from this server's and the tenant's limits; 0 where Airlock has no such setting.
   */
  function configInfo(
    policy: ReturnType<typeof tenantLimitsPolicy>,
    quotas: Awaited<ReturnType<typeof tenants.quotas>>,
  ) {
    const max = (server: number, quota: number | undefined) => (quota === undefined ? server : Math.min(server, quota))
    const maxTimeoutMs = max(policy.maxTimeoutMs, quotas.maxTimeoutMs)
    return {
      maintenance_mode: false,
      enable_wait_result: true,
      enable_compiler_options: false,
      allowed_languages_for_compile_options: [] as string[],
      enable_command_line_arguments: true,
      enable_submission_delete: true,
      enable_callbacks: false,
      callbacks_max_tries: 0,
      callbacks_timeout: 0,
      enable_additional_files: false,
      max_queue_size: quotas.maxQueued ?? config.defaultMaxQueued,
      cpu_time_limit: policy.defaultTimeoutMs / 1000,
      max_cpu_time_limit: maxTimeoutMs / 1000,
      cpu_extra_time: 0,
      max_cpu_extra_time: 0,
      wall_time_limit: policy.defaultTimeoutMs / 1000,
      max_wall_time_limit: maxTimeoutMs / 1000,
      memory_limit: policy.defaultMemoryMb * 1024,
      max_memory_limit: max(policy.maxMemoryMb, quotas.maxMemoryMb) * 1024,
      stack_limit: 0,
      max_stack_limit: 0,
      max_processes_and_or_threads: policy.defaultPids,
      max_max_processes_and_or_threads: max(policy.maxPids, quotas.maxPids),
      enable_per_process_and_thread_time_limit: false,
      allow_enable_per_process_and_thread_time_limit: false,
      enable_per_process_and_thread_memory_limit: false,
      allow_enable_per_process_and_thread_memory_limit: false,
      max_file_size: 0,
      max_max_file_size: 0,
      number_of_runs: 1,
      max_number_of_runs: 1,
      redirect_stderr_to_stdout: false,
      max_extract_size: 0,
      enable_batched_submissions: true,
      max_submission_batch_size: maxBatch,
      submission_cache_duration: 0,
      use_docs_as_homepage: false,
      allow_enable_network: false,
      enable_network: false,
    }
  }
}

function notFoundAsUndefined(err: unknown): undefined {
  if (isAirlockError(err) && err.code === 'AIRLOCK_ERR_NOT_FOUND') return undefined
  throw err
}

export default judge0Routes
