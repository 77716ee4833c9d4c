import { ValidationError } from './errors.js'

/**
 * One segment of a request's path, from a caller's value (a job id, an artifact's path,
 * a tenant's name). A URL parser removes `.` and `..` segments before the request is
 * sent, so `jobs.get('..')` or an artifact path of `../../<another job>/logs` would
 * reach another route with the caller's key (a service checking that a job is its user's,
 * then fetching the artifact its user names, would hand that user another's output). Such
 * a segment, or an empty one, is refused before anything is sent. Every other character
 * is percent-encoded, `%` included, so `%2e%2e` stays those six characters.
 */
export function pathSegment(value: string, what: string): string {
  if (value === '' || value === '.' || value === '..')
    throw new ValidationError(
      `${what} ${JSON.stringify(value)} is not a path segment: empty, '.' and '..' would name another route`,
      'AIRLOCK_SDK_INVALID_PATH',
    )
  return encodeURIComponent(value)
}

/** The path of job `id`. */
export function jobPath(id: string): string {
  return `/v1/jobs/${pathSegment(id, 'job id')}`
}
