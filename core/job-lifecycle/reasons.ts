import type { FinalStatus } from './transitions.js'
import type { JobOutcome } from '../job.js'

/**
 * The reasons a job ends with that are ours to word, in one place: what a tenant reads in
 * `reason` when its job did not simply run to an exit status.
 */
export const REASONS = {
  cancelledBeforeStart: 'cancelled before it started',
  cancelledWhileRunning: 'cancelled while running',
  workerLost: 'the worker running this job stopped before it finished; it was not run again',
  handOverStopped:
    'the worker handing this job to a warm pod stopped before the hand-over was complete; it was not run again',
  handOverFailed: (why: string) => `the job could not be handed to its warm pod (${why}); it was not run again`,
  timeLimit: (timeoutMs: number) => `exceeded the time limit of ${timeoutMs} ms`,
  memoryLimit: (memoryMb: number) => `exceeded the memory limit of ${memoryMb} MiB`,
} as const

/** The outcome of a job that ended without a program's result: nothing ran, or it ran out of our hands. */
export function outcomeWithoutRun(status: FinalStatus, reason: string): JobOutcome {
  return {
    status,
    exitCode: null,
    signal: null,
    reason,
    stdout: '',
    stderr: '',
    truncated: false,
    startupMs: null,
    runMs: null,
  }
}
