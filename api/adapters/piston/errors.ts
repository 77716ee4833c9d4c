import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isAirlockError } from '../../../core/errors.js'
import type { Metrics } from '../../../core/metrics.js'
import { notFoundAnswerer, prepareErrorReply } from '../../plugins/error-handler.js'
import { pistonField, pistonMessage } from './execute.js'
import { LIMIT_FIELDS } from './schemas.js'

interface ValidationIssue {
  instancePath: string
  keyword?: string
  message?: string
  params?: { requiredProperties?: string[] }
}

/** Piston's checks in its order (api/src/api/v2.js): the first failing one is what it says. */
const REQUIRED_AS: Record<string, string> = { language: 'a string', version: 'a string', files: 'an array' }

/** A schema failure of an execute body in Piston's words (`language is required as a string`). Pure. */
export function pistonValidationMessage(issues: readonly ValidationIssue[]): string {
  const said = issues.map((issue) => {
    const missing = issue.keyword === 'required' ? issue.params?.requiredProperties?.[0] : undefined
    const path = missing === undefined ? issue.instancePath : `${issue.instancePath}/${missing}`
    const top = path.split('/')[1] ?? ''
    const rank = top in REQUIRED_AS ? Object.keys(REQUIRED_AS).indexOf(top) : 3
    const absentOrWrongType = issue.keyword === 'required' || issue.keyword === 'type'
    if (absentOrWrongType && path === `/${top}` && top in REQUIRED_AS)
      return { rank, text: `${top} is required as ${REQUIRED_AS[top]}` }
    if (absentOrWrongType && /^\/files\/\d+\/content$/.test(path))
      return { rank, text: `${pistonField(path)} is required as a string` }
    if (path === `/${top}` && (LIMIT_FIELDS as readonly string[]).includes(top))
      return { rank, text: `If specified, ${top} must be a number` }
    return { rank, text: `${pistonField(path)} ${issue.message ?? 'is invalid'}` }
  })
  return said.sort((a, b) => a.rank - b.rank)[0]?.text ?? 'invalid request'
}

/**
 * Errors of the Piston scope in Piston's shape, `{ message }`, with Airlock's code
 * beside it: the status and code are the app's one mapping (prepareErrorReply), only the
 * shape and, for a bad body, the words are Piston's. A path no route has is Piston's
 * 404 (405 for a method the path does not take).
 */
export function registerPistonErrors(scope: FastifyInstance, metrics: Metrics): void {
  const notFound = notFoundAnswerer(
    scope,
    metrics,
    (err) => ({ message: err.message, code: err.code }),
    ' in the Piston API (docs/piston.md)',
  )
  scope.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    // A body on its way to no route, refused unread (body-budget.ts): answered as the path
    // is, 404 or 405; anything else (a missing key first) as it is.
    if (request.is404 && isAirlockError(err) && err.code === 'AIRLOCK_ERR_ROUTE_NOT_FOUND')
      return notFound(request, reply)
    const { status, body } = prepareErrorReply(err, request, reply, metrics)
    const message =
      err.validation && err.validationContext === 'body'
        ? pistonValidationMessage(err.validation as ValidationIssue[])
        : isAirlockError(err)
          ? pistonMessage(body.message, err.details)
          : body.message
    return reply.status(status).send({ message, code: body.code })
  })

  scope.setNotFoundHandler(notFound)
}
