import { constants } from 'node:os'
import type { JobView } from '../../../core/job-store.js'
import { languageIdOf, STATUSES, type Judge0Status } from './catalog.js'

/**
 * A job read back as a Judge0 submission: its status, message, exit code and signal, times
 * and which attributes a client may ask for. Pure, so every mapping is tested directly;
 * the output itself is streamed (submission-json.ts).
 */

type JobRecord = JobView['job']

/** The one run a submission is: its test case when it has one (submission-request.ts), else the job. */
interface Run {
  kind: 'case' | 'job'
  status: string
  exitCode: number | null
  signal: string | null
  timeMs: number | null
}

function theRun(job: JobRecord): Run {
  const one = job.tests[0]
  if (one) return { kind: 'case', status: one.status, exitCode: one.exitCode, signal: one.signal, timeMs: one.timeMs }
  return { kind: 'job', status: job.status, exitCode: job.exitCode, signal: job.signal, timeMs: job.timings.runMs }
}

/**
 * Whether the submission asked for its stderr in its stdout. The job's record keeps no
 * spec for the API to read; what it keeps is its one test case, made only for
 * expected_output or redirect_stderr_to_stdout (never both), and whether that case had an
 * expectation (`matched` is null without one).
 */
export function redirectsStderr(job: JobRecord): boolean {
  const one = job.tests[0]
  return one !== undefined && one.matched === null
}

/**
 * By number, as Judge0 maps them (Status.find_runtime_error_by_status_code): a name would
 * miss an alias (signal 6 is both SIGABRT and SIGIOT).
 */
const SIGNAL_STATUS: Record<number, Judge0Status> = {
  [constants.signals.SIGSEGV]: STATUSES.sigsegv,
  [constants.signals.SIGXFSZ]: STATUSES.sigxfsz,
  [constants.signals.SIGFPE]: STATUSES.sigfpe,
  [constants.signals.SIGABRT]: STATUSES.sigabrt,
}

function runtimeError(run: Run): Judge0Status {
  if (run.signal) return SIGNAL_STATUS[signalNumber(run.signal) ?? -1] ?? STATUSES.other
  return run.exitCode !== null && run.exitCode !== 0 ? STATUSES.nzec : STATUSES.other
}

/**
 * Airlock's end of a job -> Judge0's status. oom has no Judge0 status: a program killed
 * for memory is "Runtime Error (Other)", as Judge0 shows one its sandbox killed. A
 * cancelled job and one that failed on our side are "Internal Error": neither is the
 * program's doing. Judge0's "Exec Format Error" never happens here.
 */
export function judge0Status(job: JobRecord): Judge0Status {
  if (job.status === 'queued') return STATUSES.queue
  if (job.status === 'running') return STATUSES.process
  if (job.compile && job.compile.status !== 'succeeded') return STATUSES.compilationError
  if (job.status === 'timeout') return STATUSES.timeLimit
  if (job.status === 'oom') return STATUSES.other
  if (job.status === 'cancelled' || job.status === 'error') return STATUSES.internal
  const run = theRun(job)
  if (run.kind === 'case') {
    if (run.status === 'passed') return STATUSES.accepted
    if (run.status === 'wrong-answer') return STATUSES.wrongAnswer
    if (run.status === 'timeout') return STATUSES.timeLimit
    return runtimeError(run)
  }
  if (job.status === 'succeeded') return STATUSES.accepted
  return runtimeError(run)
}

function signalNumber(signal: string | null): number | null {
  if (!signal) return null
  return (constants.signals as Record<string, number | undefined>)[signal] ?? null
}

/** Judge0's `message`: what its sandbox would have said, or why Airlock ended the job. */
export function judge0Message(job: JobRecord, status: Judge0Status): string | null {
  const run = theRun(job)
  switch (status.id) {
    case STATUSES.queue.id:
    case STATUSES.process.id:
    case STATUSES.accepted.id:
    case STATUSES.wrongAnswer.id:
      return null
    case STATUSES.timeLimit.id:
      return 'Time limit exceeded'
    case STATUSES.compilationError.id:
      return job.reason
    case STATUSES.internal.id:
      return job.status === 'cancelled'
        ? `Cancelled${job.reason ? `: ${job.reason}` : ''}`
        : (job.reason ?? 'Internal error')
    default:
      if (job.status === 'oom') return `Memory limit exceeded${job.reason ? `: ${job.reason}` : ''}`
      if (run.signal) return `Caught fatal signal ${signalNumber(run.signal) ?? run.signal}`
      if (run.exitCode !== null && run.exitCode !== 0) return `Exited with error status ${run.exitCode}`
      return job.reason
  }
}

/** Milliseconds -> Judge0's seconds, a decimal string ("0.012"). */
function seconds(ms: number | null): string | null {
  return ms === null ? null : (ms / 1000).toFixed(3)
}

/** The compiler's output as Judge0 gives it: stderr then stdout, null when there is none. */
function compileOutput(job: JobRecord): string | null {
  const text = job.compile ? job.compile.stderr + job.compile.stdout : ''
  return text === '' ? null : text
}

/** Attributes whose value is the job's output: streamed, never held whole. */
export const STREAMED = ['stdout', 'stderr'] as const
export type StreamedField = (typeof STREAMED)[number]

/** Attributes that are text Judge0 base64-encodes with base64_encoded=true (besides stdout and stderr). */
export const ENCODED = new Set(['compile_output'])

/** Every attribute Airlock answers, in Judge0's order; `fields=*` asks for these. */
export const ANSWERED = [
  'token',
  'stdout',
  'stderr',
  'compile_output',
  'message',
  'exit_code',
  'exit_signal',
  'status',
  'status_id',
  'language_id',
  'language',
  'created_at',
  'finished_at',
  'time',
  'wall_time',
  'memory',
] as const
export type AnsweredField = (typeof ANSWERED)[number]

/**
 * A submission's inputs, which Judge0 also echoes. Asked for, they are left out: the API
 * reads a job without its spec (which can be megabytes), and the client sent them.
 */
const INPUTS = [
  'source_code',
  'stdin',
  'expected_output',
  'compiler_options',
  'command_line_arguments',
  'number_of_runs',
  'cpu_time_limit',
  'cpu_extra_time',
  'wall_time_limit',
  'memory_limit',
  'stack_limit',
  'max_processes_and_or_threads',
  'enable_per_process_and_thread_time_limit',
  'enable_per_process_and_thread_memory_limit',
  'max_file_size',
  'redirect_stderr_to_stdout',
  'callback_url',
  'additional_files',
  'enable_network',
] as const

/** Judge0's default attributes (app/services/fields/submission.rb). */
export const DEFAULT_FIELDS: readonly AnsweredField[] = [
  'token',
  'time',
  'memory',
  'stdout',
  'stderr',
  'compile_output',
  'message',
  'status',
]

/**
 * `fields` -> the attributes to answer, in the order asked; undefined `fields` is Judge0's
 * default set, `*` every one. Unknown names are returned apart, for Judge0's 400.
 */
export function selectFields(fields: string | undefined): { fields: AnsweredField[]; invalid: string[] } {
  if (fields === undefined || fields.trim() === '') return { fields: [...DEFAULT_FIELDS], invalid: [] }
  const names = fields
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '')
  if (names.includes('*')) return { fields: [...ANSWERED], invalid: [] }
  const invalid = names.filter(
    (n) => !(ANSWERED as readonly string[]).includes(n) && !(INPUTS as readonly string[]).includes(n),
  )
  const chosen = [...new Set(names.filter((n): n is AnsweredField => (ANSWERED as readonly string[]).includes(n)))]
  return { fields: chosen, invalid }
}

/** Every answered attribute but the streamed ones, for one job. `languageName` names its language. */
export function plainAttributes(
  view: JobView,
  languageName: (id: number) => string | null,
): Record<Exclude<AnsweredField, StreamedField>, unknown> {
  const { job } = view
  const status = judge0Status(job)
  const run = theRun(job)
  const languageId = languageIdOf(job.runtime)
  const final = status.id > STATUSES.process.id
  return {
    token: view.id,
    compile_output: compileOutput(job),
    message: judge0Message(job, status),
    exit_code: final ? run.exitCode : null,
    exit_signal: final ? signalNumber(run.signal) : null,
    status,
    status_id: status.id,
    language_id: languageId,
    language: languageId === null ? null : { id: languageId, name: languageName(languageId) },
    created_at: job.createdAt,
    finished_at: job.finishedAt,
    // Airlock measures wall-clock time only: Judge0's CPU `time` is that too.
    time: final ? seconds(run.timeMs) : null,
    wall_time: final ? seconds(run.timeMs) : null,
    // Not measured: a sandbox's peak memory is not read back.
    memory: null,
  }
}
