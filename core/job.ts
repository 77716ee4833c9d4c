import { Type, type Static } from 'typebox'
import { JobStatusSchema, type JobStatus } from './job-status.js'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

/** A job as clients see it (`GET /v1/jobs/:id`). */
export const JobSchema = Type.Object({
  id: Type.String(),
  runtime: Type.String(),
  status: JobStatusSchema,
  exitCode: Nullable(Type.Integer()),
  signal: Nullable(Type.String({ description: 'Signal that ended the program, e.g. SIGKILL' })),
  reason: Nullable(Type.String({ description: 'Why the job ended as it did, when its exit code does not say' })),
  stdout: Type.String(),
  stderr: Type.String(),
  truncated: Type.Boolean({ description: 'stdout or stderr was cut at limits.outputBytes' }),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  finishedAt: Nullable(Type.String({ format: 'date-time' })),
  timings: Type.Object({
    queuedMs: Nullable(Type.Integer({ description: 'Accepted to picked up by a worker' })),
    startupMs: Nullable(Type.Integer({ description: 'Picked up to program started (sandbox creation)' })),
    runMs: Nullable(Type.Integer({ description: 'Program started to program ended' })),
  }),
  executor: Nullable(Type.String({ description: 'Executor that ran the job: local or kubernetes' })),
  isolation: Nullable(Type.String({ description: 'Sandbox technology that isolated the job, e.g. gvisor' })),
})

export type Job = Static<typeof JobSchema>

export const JobAcceptedSchema = Type.Object({ id: Type.String(), status: JobStatusSchema })

/** What the worker learns from running a job; becomes part of the stored record. */
export interface JobOutcome {
  status: Exclude<JobStatus, 'queued' | 'running'>
  exitCode: number | null
  signal: string | null
  reason: string | null
  stdout: string
  stderr: string
  truncated: boolean
  startupMs: number | null
  runMs: number | null
}
