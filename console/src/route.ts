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

const STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error']

export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#/, '').split('?', 2)
  const parts = path.split('/').filter(Boolean)
  if (parts[0] === 'jobs' && parts[1]) return { page: 'job', id: decodeURIComponent(parts[1]) }
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
