import {
  AuthenticationError,
  ConflictError,
  ConnectionError,
  ForbiddenError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  type Job,
} from '../sdk/src/index.js'

/**
 * The CLI's exit codes. A job that ran exits with the program's own code (128 + n
 * when a signal ended it); the others are distinct so scripts can tell them apart.
 * BSD sysexits codes for the CLI's own failures.
 */
export const EXIT = {
  ok: 0,
  /** The job exceeded its time limit (as coreutils `timeout`). */
  timeout: 124,
  /** The job exceeded its memory limit. */
  oom: 125,
  /** The job was cancelled (as an interrupted shell command). */
  cancelled: 130,
  /** Wrong command line. */
  usage: 64,
  /** The server refused the request as invalid. */
  invalid: 65,
  /** No such job. */
  notFound: 66,
  /** The job could not be run (status error), or another server failure. */
  software: 70,
  /** The server cannot be reached, or cannot take jobs now. */
  unavailable: 69,
  /** Missing or wrong API key, or a key that may not do this. */
  noPermission: 77,
  /** The job had already ended (cancelling a finished job). */
  alreadyEnded: 3,
  /**
   * The compile failed, or a test case did not pass: the program's fault, as a compiler's or a test runner's exit 1.
   */
  stepsFailed: 1,
} as const

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGXCPU: 24,
}

/** An ended job -> the CLI's exit code. */
export function exitCodeForJob(
  job: Pick<Job, 'status' | 'exitCode' | 'signal'> & Partial<Pick<Job, 'compile' | 'tests'>>,
): number {
  switch (job.status) {
    case 'succeeded':
      return EXIT.ok
    case 'failed':
      if (job.exitCode !== null) return job.exitCode
      if ((job.compile && job.compile.status !== 'succeeded') || (job.tests?.length ?? 0) > 0) return EXIT.stepsFailed
      return job.signal && SIGNALS[job.signal] ? 128 + SIGNALS[job.signal]! : EXIT.software
    case 'timeout':
      return EXIT.timeout
    case 'oom':
      return EXIT.oom
    case 'cancelled':
      return EXIT.cancelled
    default:
      return EXIT.software
  }
}

/** A failure of a call -> the CLI's exit code. */
export function exitCodeForError(err: unknown): number {
  if (err instanceof AuthenticationError || err instanceof ForbiddenError) return EXIT.noPermission
  if (err instanceof NotFoundError) return EXIT.notFound
  if (err instanceof ConflictError && err.code === 'AIRLOCK_ERR_JOB_FINISHED') return EXIT.alreadyEnded
  if (err instanceof ValidationError) return EXIT.invalid
  if (err instanceof ConnectionError || err instanceof UnavailableError) return EXIT.unavailable
  return EXIT.software
}
