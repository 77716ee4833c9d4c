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

// Which statuses are final follows from the moves a job can make: core/job-lifecycle/transitions.ts.
