import type { Isolation, JobOutcome } from '../../core/job.js'
import type { JobSpec } from '../../core/job-spec.js'

export interface IsolationReport {
  ok: boolean
  /** e.g. "gvisor" */
  technology: string
  /**
   * e.g. "runsc v0.0.0-20260905035102-160fafc42237, platform systrap, cgroup v1; platforms that work here: systrap,
   * ptrace"
   */
  detail: string
  /** Why isolation cannot be guaranteed; null when ok. */
  reason: string | null
  /** What every job of this executor gets; recorded in each job. Null when not ok. */
  isolation: Isolation | null
}

export interface ExecutionRequest {
  jobId: string
  /** Who submitted the job; labels what the executor creates for it. */
  tenant: string
  spec: JobSpec
  /** Aborted when the job is cancelled; the sandbox is then killed. */
  signal: AbortSignal
  /**
   * Called (and awaited) right before the sandbox starts: the launch record. When it
   * throws (LaunchRefusedError), nothing is started and run rejects with its error.
   */
  beforeLaunch?: () => Promise<void>
  /** Called with output as the program produces it (within the output cap), in order. */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void
}

/**
 * One interface, two implementations (local runsc, Kubernetes); the worker does not
 * know which it has. `run` resolves with the job's outcome whatever the user's code
 * did; it rejects only for faults of ours.
 */
export interface Executor {
  readonly name: string
  checkIsolation(): Promise<IsolationReport>
  runtimeVersions(): Promise<Record<string, string>>
  run(request: ExecutionRequest): Promise<JobOutcome>
  /**
   * For a job a worker that stopped had launched: follows its sandbox to the end if
   * the sandbox outlived that worker (a Kubernetes Job does), instead of running the
   * job again. Null when there is nothing to adopt. Executors whose sandboxes die with
   * their worker do not have it.
   */
  adopt?(request: ExecutionRequest): Promise<JobOutcome | null>
  /** Called once the job's result is stored: removes what the executor kept for it. */
  forget?(jobId: string): Promise<void>
  /** Removes sandboxes left behind by workers that died. Returns how many. */
  reapOrphans(): Promise<number>
  close(): Promise<void>
}

/** A fault of ours while running a job (not the user's code failing). */
export class ExecutorError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ExecutorError'
  }
}

/**
 * Isolation cannot be guaranteed right now (found at launch time): the job was not
 * launched and goes back to the queue, and the worker stops taking jobs (fail closed).
 */
export class IsolationUnavailableError extends ExecutorError {
  constructor(reason: string) {
    super(reason)
    this.name = 'IsolationUnavailableError'
  }
}

/**
 * The launch record refused the launch: the job is no longer running under this worker
 * (it was ended as lost while this worker was frozen between its claim and its launch).
 * Nothing of it is started, and its end is someone else's to record.
 */
export class LaunchRefusedError extends ExecutorError {
  constructor(jobId: string) {
    super(`${jobId} is no longer running under this worker; not launched`)
    this.name = 'LaunchRefusedError'
  }
}
