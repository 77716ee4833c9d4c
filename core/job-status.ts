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

export const JobStatusSchema = Type.Union([
  Type.Literal('queued'),
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('timeout'),
  Type.Literal('oom'),
  Type.Literal('cancelled'),
  Type.Literal('error'),
])
export type JobStatus = Static<typeof JobStatusSchema>

export type FinalStatus = Exclude<JobStatus, 'queued' | 'running'>

const FINAL: ReadonlySet<JobStatus> = new Set<JobStatus>(['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'])

export function isFinalStatus(status: JobStatus): status is FinalStatus {
  return FINAL.has(status)
}
