import { Type, type Static } from 'typebox'

export const JOB_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed', // the user's program exited non-zero or was killed by a signal
  'timeout',
  'oom',
  'cancelled',
  'error', // our fault; `reason` says what happened
] as const

// One enum, not a union of constants: generated clients get one type, not eight.
export const JobStatusSchema = Type.Enum(JOB_STATUSES, { type: 'string', title: 'JobStatus' })
export type JobStatus = Static<typeof JobStatusSchema>

export type FinalStatus = Exclude<JobStatus, 'queued' | 'running'>

const FINAL: ReadonlySet<JobStatus> = new Set<JobStatus>(['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'])

export function isFinalStatus(status: JobStatus): status is FinalStatus {
  return FINAL.has(status)
}
