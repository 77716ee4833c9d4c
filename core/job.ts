import { Type, type Static } from 'typebox'
import { ArtifactSchema, type ArtifactFile } from './artifacts.js'
import { JobStatusSchema, type JobStatus } from './job-status.js'
import { CompileResultSchema, TestResultSchema, type CompileResult, type TestResult } from './test-cases.js'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

/** How a job was isolated, as recorded by the worker that ran it. */
export const IsolationSchema = Type.Object(
  {
    technology: Type.String({ description: 'e.g. gvisor' }),
    runtime: Type.String({ description: 'OCI runtime, e.g. runsc' }),
    version: Type.String(),
    platform: Type.String({
      description:
        'How gVisor ran the job: systrap or ptrace (local executor); kubernetes (the node chooses); native for runc',
    }),
    network: Type.Enum(['none', 'host', 'pod'], {
      type: 'string',
      title: 'IsolationNetwork',
      description:
        "none: loopback only; pod: the cluster's pod network, limited by the namespace's deny-all NetworkPolicy (runc benchmark jobs on Kubernetes)",
    }),
    readOnlyRoot: Type.Boolean(),
    uid: Type.Integer(),
    capabilities: Type.Array(Type.String(), { description: 'Capabilities the program holds; empty' }),
    seccomp: Type.Optional(
      Type.String({
        description:
          'The seccomp profile the program ran under, named by its hash (airlock/sandbox-<hash>.json); absent in records from before it',
      }),
    ),
  },
  { title: 'Isolation' },
)

export type Isolation = Static<typeof IsolationSchema>

export const SandboxStartSchema = Type.Enum(['warm', 'cold'], {
  type: 'string',
  title: 'SandboxStart',
  description:
    "warm: the job was handed to a sandbox booted before it arrived (from the worker's pool); cold: a sandbox was booted for it",
})
export type SandboxStart = Static<typeof SandboxStartSchema>

/** A job as clients see it (`GET /v1/jobs/:id`). */
export const JobSchema = Type.Object(
  {
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
    timings: Type.Object(
      {
        queuedMs: Nullable(Type.Integer({ description: 'Accepted to picked up by a worker' })),
        startupMs: Nullable(Type.Integer({ description: 'Picked up to program started (sandbox creation)' })),
        runMs: Nullable(Type.Integer({ description: 'Program started to program ended' })),
        bootMs: Nullable(
          Type.Integer({
            description:
              "How long the job's sandbox took to boot: within startupMs when it started cold, before the job arrived when warm",
          }),
        ),
        exitToResultMs: Nullable(
          Type.Integer({
            description:
              'Program ended to its result stored: how long the service took to learn of the end and record it',
          }),
        ),
      },
      { title: 'JobTimings' },
    ),
    sandboxStart: Nullable(SandboxStartSchema),
    executor: Nullable(Type.String({ description: 'Executor that ran the job: local or kubernetes' })),
    isolation: Nullable(IsolationSchema),
    artifacts: Type.Array(ArtifactSchema, {
      description: 'Files the job left in /workspace/out, in path order (local executor)',
    }),
    compile: Nullable(CompileResultSchema),
    tests: Type.Array(TestResultSchema, {
      description:
        'One entry per test case that ran, in order; empty for a job without tests (or whose compile failed)',
    }),
  },
  { title: 'Job' },
)

export type Job = Static<typeof JobSchema>

/** A job in a listing: no output, which can be large; `GET /v1/jobs/:id` has it. */
export const JobSummarySchema = Type.Object(
  {
    id: Type.String(),
    runtime: Type.String(),
    status: JobStatusSchema,
    exitCode: Nullable(Type.Integer()),
    reason: Nullable(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Nullable(Type.String({ format: 'date-time' })),
    finishedAt: Nullable(Type.String({ format: 'date-time' })),
  },
  { title: 'JobSummary' },
)

export type JobSummary = Static<typeof JobSummarySchema>

export const JobListSchema = Type.Object(
  {
    items: Type.Array(JobSummarySchema, { description: 'Newest first' }),
    nextCursor: Nullable(Type.String({ description: 'Pass as cursor for the next page; null on the last page' })),
  },
  { title: 'JobList' },
)

export type JobList = Static<typeof JobListSchema>

export const JobAcceptedSchema = Type.Object({ id: Type.String(), status: JobStatusSchema }, { title: 'JobAccepted' })

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
  /** How this job was isolated, when not the executor's usual way (the runc comparison runtime). */
  isolation?: Isolation
  /** warm: the job was handed to a sandbox booted before it arrived; cold: one booted for it. */
  sandboxStart?: SandboxStart
  /** How long its sandbox took to boot: part of startupMs when cold, before the job when warm. */
  bootMs?: number | null
  /** When the program ended (epoch ms) as the executor learned it; its result is stored after. */
  endedAt?: number | null
  /** Files the job left in ARTIFACTS_DIR; absent when the executor does not bring them back. */
  artifacts?: ArtifactFile[]
  /** A compiled runtime's compile step (null: it never reported); absent for an interpreter. */
  compile?: CompileResult | null
  /** Each test case that ran, for a job with tests. */
  tests?: TestResult[]
}
