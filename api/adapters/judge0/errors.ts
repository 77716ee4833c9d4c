import type { FastifyError, FastifyInstance } from 'fastify'
import { isAirlockError } from '../../../core/errors.js'
import type { ErrorCode, ErrorDetail } from '../../../core/errors.js'
import type { Metrics } from '../../../core/metrics.js'
import { notFoundAnswerer, prepareErrorReply } from '../../plugins/error-handler.js'

/**
 * Judge0's error shapes, which its clients read: a submission's attributes that are wrong
 * are a 422 of `{attribute: [message, ...]}` (Rails' model errors); anything else is
 * `{"error": message}` with a 4xx (submissions_controller.rb).
 */
export type FieldErrors = Record<string, string[]>

export class Judge0Error extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: FieldErrors | { error: string },
  ) {
    super('error' in body && typeof body.error === 'string' ? body.error : JSON.stringify(body))
    this.name = 'Judge0Error'
  }

  /** A 422 naming the attributes that are wrong. */
  static fields(errors: FieldErrors): Judge0Error {
    return new Judge0Error(422, errors)
  }
}

/** Where an Airlock detail path points in a Judge0 submission (for errors from resolveJobSpec and quotas). */
const ATTRIBUTES: [RegExp, string, string][] = [
  [/^\/limits\/timeoutMs/, 'wall_time_limit', 'timeoutMs, milliseconds'],
  [/^\/limits\/compileTimeoutMs/, 'wall_time_limit', 'compileTimeoutMs, milliseconds'],
  [/^\/limits\/memoryMb/, 'memory_limit', 'memoryMb, MiB'],
  [/^\/limits\/pids/, 'max_processes_and_or_threads', 'pids'],
  [/^\/(source|files)/, 'source_code', ''],
  [/^\/(tests\/0\/)?stdin/, 'stdin', ''],
  [/^\/(tests\/0\/)?args/, 'command_line_arguments', ''],
  [/^\/tests\/0\/expectedOutput/, 'expected_output', ''],
]

/** An Airlock 400's details as Judge0 attribute errors, with Airlock's units said where they differ. */
export function attributeErrors(details: ErrorDetail[] | undefined, message: string): FieldErrors {
  const errors: FieldErrors = {}
  for (const d of details ?? [{ path: '', message }]) {
    const match = ATTRIBUTES.find(([re]) => re.test(d.path))
    const name = match?.[1] ?? 'base'
    const unit = match?.[2]
      ? ` (as Airlock's ${match[2]}; GET /judge0/config_info gives the maximum in Judge0's units)`
      : ''
    ;(errors[name] ??= []).push(`${d.message}${unit}`)
  }
  return errors
}

/**
 * The scope's error handler: Judge0's shapes for what a client did wrong, Airlock's codes
 * kept alongside (`code`) so an operator can match them to the rest of the API. 5xx are
 * logged and answered generically, as everywhere else.
 */
export function registerJudge0Errors(
  scope: FastifyInstance,
  metrics: Metrics,
  descriptions: Record<string, string | undefined>,
): void {
  // After the scope's authentication, as its routes: a path or method it does not have is
  // answered, in Judge0's shape, only to a caller with a key.
  const notFound = notFoundAnswerer(
    scope,
    metrics,
    (err) => ({ error: err.message, code: err.code }),
    ' in the Judge0 API (docs/judge0.md)',
  )
  scope.setNotFoundHandler(notFound)
  scope.setErrorHandler((err: FastifyError, request, reply) => {
    // A body on its way to no route, refused unread (body-budget.ts): answered as the path
    // is, 404 or 405; anything else (a missing key first) as it is.
    if (request.is404 && isAirlockError(err) && err.code === 'AIRLOCK_ERR_ROUTE_NOT_FOUND')
      return notFound(request, reply)
    if (err instanceof Judge0Error) {
      metrics.rejectedRequests.inc({ code: 'JUDGE0_INVALID' })
      // `{error}` carries Airlock's code as the rest of the API does; a 422's keys are the
      // submission's attributes, which Judge0's clients read as such, so it has none.
      if (!('error' in err.body)) return reply.status(err.statusCode).send(err.body)
      const code: ErrorCode = err.statusCode === 404 ? 'AIRLOCK_ERR_NOT_FOUND' : 'AIRLOCK_ERR_VALIDATION'
      return reply.status(err.statusCode).send({ ...err.body, code })
    }
    if (err.validation && err.validationContext === 'body') {
      metrics.rejectedRequests.inc({ code: 'JUDGE0_INVALID' })
      return reply.status(422).send(schemaErrors(err.validation, descriptions))
    }
    const { status, body } = prepareErrorReply(err, request, reply, metrics)
    // A job's limits or inputs refused by Airlock's own checks are the submission's attributes.
    if (
      status === 400 &&
      (body.code === 'AIRLOCK_ERR_LIMIT_EXCEEDED' ||
        body.code === 'AIRLOCK_ERR_QUOTA_JOB_LIMITS' ||
        body.code === 'AIRLOCK_ERR_VALIDATION' ||
        body.code === 'AIRLOCK_ERR_INVALID_FILE') &&
      !err.validation
    ) {
      return reply.status(422).send(attributeErrors(body.details, body.message))
    }
    return reply.status(status).send({ error: body.message, code: body.code })
  })
}

interface SchemaError {
  instancePath: string
  message?: string | undefined
  params?: Record<string, unknown>
}

/** Schema errors as Judge0 attribute errors: one message per attribute, naming what it must be. */
export function schemaErrors(
  errors: readonly SchemaError[],
  descriptions: Record<string, string | undefined> = {},
): FieldErrors {
  const out: FieldErrors = {}
  for (const e of errors) {
    const extra = e.params?.additionalProperties
    if (Array.isArray(extra)) {
      for (const name of extra) out[String(name)] = ['is not a Judge0 submission attribute']
      continue
    }
    const name = e.instancePath.split('/')[1] || 'base'
    // TypeBox reports an unknown attribute twice: as a false schema at its path, and above.
    if (e.message === 'schema is false') {
      out[name] = ['is not a Judge0 submission attribute']
      continue
    }
    if (out[name]) continue
    const wanted = descriptions[name]
    out[name] = [wanted ? `must be ${wanted}` : (e.message ?? 'is invalid')]
  }
  return out
}
