import { boundedJsonParser } from '../../plugins/bounded-json.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError, isAirlockError } from '../../../core/errors.js'
import type { JobHead } from '../../../core/job-store.js'
import { registerAuth } from '../../plugins/auth.js'
import { callerGone } from '../../services/job-service.js'
import { MISSING_KEY, pistonKey } from './auth.js'
import { registerPistonErrors } from './errors.js'
import { toJobRequest } from './execute.js'
import { findPistonRuntime, pistonRuntimes } from './languages.js'
import { pistonResult } from './result.js'
import {
  PistonExecuteSchema,
  PistonPackageListSchema,
  PistonResultSchema,
  PistonRuntimeListSchema,
  pistonErrors,
} from './schemas.js'
import { bindRequestLog } from '../../../core/logger.js'
import { IDEMPOTENCY_KEY_HEADER } from '../../../core/idempotency.js'

/**
 * A drop-in Piston v2 API (engineer-man/piston, /api/v2) under /piston: a Piston
 * client pointed at https://host/piston runs its code on Airlock's jobs, through the
 * one job service, in Piston's request and answer shapes. What maps and what differs:
 * docs/piston.md. Its routes are not in Airlock's OpenAPI document: their clients are
 * Piston's, their errors Piston's shape. The app registers it in a scope of its own,
 * so its hooks, error handler and parser stay here.
 */
const pistonAdapter: FastifyPluginAsyncTypebox = async (scope) => {
  const {
    config,
    registry,
    jobService,
    outputWriter,
    metrics,
    streamTokens,
    tenants,
    store,
    claimConnection,
    turns,
    failedKeys,
  } = scope.services
  registerAuth(scope, {
    tenantsByKey: config.tenantsByKey,
    streamTokens,
    tenants,
    failedKeys,
    claimConnection,
    turns,
    keyFrom: pistonKey,
    missingKey: MISSING_KEY,
  })
  registerPistonErrors(scope, metrics)
  // piston-client (npm) posts its JSON as text/plain (node-fetch's default for a string
  // body); it is read as JSON here, and only here: a body that is not JSON is a 400.
  scope.addContentTypeParser('text/plain', { parseAs: 'buffer' }, boundedJsonParser(scope))

  scope.get(
    '/api/v2/runtimes',
    { schema: { hide: true, response: { 200: PistonRuntimeListSchema, ...pistonErrors(401, 503) } } },
    async () =>
      pistonRuntimes(await registry.live()).map((r) => ({
        language: r.language,
        version: r.version,
        aliases: r.aliases,
        ...(r.runtime !== r.language ? { runtime: r.runtime } : {}),
      })),
  )

  // Airlock's runtimes are its operator's sandbox images, all installed; none is installed through the API.
  scope.get(
    '/api/v2/packages',
    { schema: { hide: true, response: { 200: PistonPackageListSchema, ...pistonErrors(401, 503) } } },
    async () =>
      pistonRuntimes(await registry.live()).map((r) => ({
        language: r.language,
        language_version: r.version,
        installed: true,
      })),
  )
  const refused = async () => {
    throw new AirlockError(
      'AIRLOCK_ERR_FORBIDDEN',
      "packages are not installed through this API: Airlock's runtimes are its operator's sandbox images (GET /api/v2/runtimes lists them)",
    )
  }
  for (const method of ['POST', 'DELETE'] as const)
    scope.route({
      method,
      url: '/api/v2/packages',
      schema: { hide: true, response: pistonErrors(401, 403) },
      handler: refused,
    })

  scope.post(
    '/api/v2/execute',
    {
      schema: {
        hide: true,
        body: PistonExecuteSchema,
        response: { 200: PistonResultSchema, ...pistonErrors(400, 401, 403, 413, 415, 429, 500, 503) },
      },
    },
    async (request, reply) => {
      // Ignored, a client's retry would run its program again. And it cannot be honoured:
      // a job whose caller left is cancelled here, so a retry would find it cancelled.
      if (request.headers[IDEMPOTENCY_KEY_HEADER] !== undefined)
        throw new AirlockError(
          'AIRLOCK_ERR_VALIDATION',
          "Piston's execute takes no Idempotency-Key (a job whose caller leaves is cancelled); POST /v1/jobs does",
          [{ path: '/headers/idempotency-key', message: 'is not taken by this route' }],
        )
      const { language, version } = request.body
      const runtime = findPistonRuntime(pistonRuntimes(await registry.live()), language, version)
      if (!runtime)
        throw new AirlockError('AIRLOCK_ERR_UNKNOWN_RUNTIME', `${language}-${version} runtime is unknown`, [
          { path: '/language', message: 'no runtime of this language and version' },
        ])
      const { id, spec } = await jobService.submit(
        request.tenant,
        toJobRequest(request.body, runtime.definition),
        request.log,
      )
      request.log = reply.log = bindRequestLog(request.log, { jobId: id })
      // Piston answers only once the code has run, and a job nobody waits for is nobody's:
      // a client that goes away cancels it.
      const gone = callerGone(reply)
      let done: JobHead | undefined
      let waitFailed: unknown
      try {
        done = gone.signal.aborted ? undefined : await jobService.waitForEnd(id, request, spec, gone.signal)
      } catch (err) {
        // Redis gone a moment, or the key revoked: Piston has no route to read the job
        // later, so it is one nobody waits for, cancelled like the rest below.
        waitFailed = err
      } finally {
        gone.stop()
      }
      // Piston's answer has the compile step, not test cases: those are not read into it.
      const answer = async (head: JobHead) =>
        outputWriter.send(
          reply,
          200,
          'application/json; charset=utf-8',
          // Patient: the job has run; a 503 would have the client run it again.
          pistonResult(await outputWriter.details(head, () => [], true), runtime, outputWriter),
        )
      if (done) return answer(done)
      // It may have ended between the wait and the cancel: then it is answered, not run again.
      const cancel = await jobService.cancel(id, request.tenant).then(
        () => 'cancelled' as const,
        (err: unknown) => (isAirlockError(err) && err.code === 'AIRLOCK_ERR_JOB_FINISHED' ? 'ended' : 'unknown'),
      )
      if (isAirlockError(waitFailed) && waitFailed.code === 'AIRLOCK_ERR_UNAUTHORIZED') throw waitFailed
      if (waitFailed) request.log.warn({ err: waitFailed }, `waiting for the job failed; its cancel: ${cancel}`)
      const view = cancel === 'ended' && !gone.signal.aborted ? await store.head(id).catch(() => undefined) : undefined
      if (view) return answer(view)
      if (gone.signal.aborted || reply.raw.destroyed) return reply.hijack()
      // Every 503 says "retry"; a job that ran, or may still, must not be sent again.
      if (cancel !== 'cancelled')
        throw new AirlockError(
          'AIRLOCK_ERR_INTERNAL',
          `job ${id} ${cancel === 'ended' ? 'ran, and its result could not be read' : 'could not be cancelled and may still run'}: sending it again would run it again`,
        )
      // Waited as long as AIRLOCK_MAX_WAIT_MS allows (a long queue), or the server is stopping.
      throw new AirlockError(
        'AIRLOCK_ERR_WAIT_EXPIRED',
        `job ${id} did not end in time (the queue is long, this tenant holds its most waiting requests, or this server is restarting); it was cancelled: retry`,
        undefined,
        1,
      )
    },
  )
}

export default pistonAdapter
