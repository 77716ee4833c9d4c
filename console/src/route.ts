import type { JobStatus } from '../../sdk/src/api-types.js'

/**
 * The console's places, in the URL's fragment so one file serves them all and a link to
 * a job can be shared within the tenant (the reader signs in with their own key).
 */
export type Route =
  | { page: 'playground' }
  | { page: 'jobs'; status: JobStatus | null }
  | { page: 'job'; id: string }
  | { page: 'operations' }

const STATUSES: readonly JobStatus[] = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'timeout',
  'oom',
  'cancelled',
  'error',
]

/** What a job id can look like (the API's own check is stricter; it answers 404 for the rest). */
const JOB_ID = /^[A-Za-z0-9_-]{1,128}$/

function decoded(part: string): string | null {
  try {
    return decodeURIComponent(part)
  } catch {
    return null
  }
}

export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#/, '').split('?', 2)
  const parts = path.split('/').filter(Boolean)
  if (parts[0] === 'jobs' && parts[1]) {
    const id = decoded(parts[1])
    // Only what can be a job id: `.` or `..` would name another route of the API.
    return id && JOB_ID.test(id) ? { page: 'job', id } : { page: 'jobs', status: null }
  }
  if (parts[0] === 'jobs') {
    const status = new URLSearchParams(query).get('status')
    return { page: 'jobs', status: STATUSES.includes(status as JobStatus) ? (status as JobStatus) : null }
  }
  if (parts[0] === 'operations') return { page: 'operations' }
  return { page: 'playground' }
}

export function routeHref(route: Route): string {
  switch (route.page) {
    case 'playground':
      return '#/'
    case 'jobs':
      return route.status ? `#/jobs?status=${route.status}` : '#/jobs'
    case 'job':
      return `#/jobs/${encodeURIComponent(route.id)}`
    case 'operations':
      return '#/operations'
  }
}

export { STATUSES }
