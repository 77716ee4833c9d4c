import { constants } from 'node:os'
import type { JobOutcome } from '../../core/job.js'
import { REASONS } from '../../core/job-lifecycle/reasons.js'

export interface SandboxEnd {
  /** runsc's exit status: the code, or 128 + signal number. null if unknown. */
  exitStatus: number | null
  timedOut: boolean
  cancelled: boolean
  /** OOM kills counted by the sandbox's memory cgroup. */
  oomKills: number
  timeoutMs: number
  memoryMb: number
  /**
   * Why the host ended the sandbox, when it did and it was not the job's own time,
   * memory or cancel: see localHostKill and the Kubernetes pod's disruption. Absent or
   * null when the host left it alone.
   */
  hostKill?: string | null
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]))

/**
 * How a sandbox ended -> the job's status. Pure. Our own decisions (timeout, cancel)
 * win over what the program's exit status says, since we caused the kill; a memory
 * cgroup OOM kill wins over the SIGKILL it produced. A sandbox the host ended for
 * any other reason is an error of ours, not the program failing: the status it ended
 * with (often the runtime's own, such as the Go runtime's 2 when it cannot get a
 * thread) says nothing about the program. One that still exited 0 ran to its end.
 */
/** An exit status above this is 128 + the signal that ended the program, as shells report it. */
export const SIGNAL_EXIT_BASE = 128

export function classifyEnd(end: SandboxEnd): Pick<JobOutcome, 'status' | 'exitCode' | 'signal' | 'reason'> {
  const signalNo =
    end.exitStatus !== null && end.exitStatus > SIGNAL_EXIT_BASE ? end.exitStatus - SIGNAL_EXIT_BASE : null
  const signal = signalNo === null ? null : (SIGNAL_NAMES.get(signalNo) ?? `SIG${signalNo}`)
  const exitCode = end.exitStatus !== null && signalNo === null ? end.exitStatus : null
  if (end.cancelled) return { status: 'cancelled', exitCode, signal, reason: REASONS.cancelledWhileRunning }
  if (end.timedOut) return { status: 'timeout', exitCode, signal, reason: REASONS.timeLimit(end.timeoutMs) }
  if (end.oomKills > 0) return { status: 'oom', exitCode, signal, reason: REASONS.memoryLimit(end.memoryMb) }
  if (end.hostKill && end.exitStatus !== 0)
    return { status: 'error', exitCode: null, signal, reason: `the host stopped the sandbox: ${end.hostKill}` }
  if (end.exitStatus === null)
    return { status: 'error', exitCode: null, signal: null, reason: 'the sandbox ended without an exit status' }
  if (end.exitStatus === 0) return { status: 'succeeded', exitCode: 0, signal: null, reason: null }
  return { status: 'failed', exitCode, signal, reason: signal ? `killed by ${signal}` : `exited with code ${exitCode}` }
}

export interface LocalHostFacts {
  /** New host threads of the sandbox that its pids cgroup refused (pids.events "max"). */
  threadRefusals: number
  /** That cgroup's limit: a backstop for gVisor's own threads, set by the executor. */
  threadLimit: number
  /** The signal that ended the runtime process itself (`runsc run`), if one did. */
  runtimeSignal: string | null
}

/**
 * What the local host did to a sandbox -> SandboxEnd.hostKill. Pure. The job's own
 * process limit is RLIMIT_NPROC inside the sandbox; the pids cgroup outside it only
 * bounds the host threads of gVisor itself, and when it refuses one the Sentry or the
 * Gofer dies and takes the program with it. Our own kills (timeout, cancel) go to the
 * container, never to the runtime process, so a signal there came from someone else.
 */
export function localHostKill(facts: LocalHostFacts): string | null {
  if (facts.threadRefusals > 0) {
    return `the sandbox reached the host's limit of ${facts.threadLimit} threads for gVisor itself (a backstop outside the sandbox, not the job's pids limit)`
  }
  if (facts.runtimeSignal) return `the sandbox runtime was killed by ${facts.runtimeSignal} on the host`
  return null
}

/**
 * An executor's unexpected failure -> the job's reason. Pure. The error's message is
 * for the worker's log: it names host paths (the worker's state directory, which
 * carries its pid), runsc's log lines and API server replies. The job, which its
 * tenant reads, gets a fixed sentence and at most the errno code.
 */
export function executorFailureReason(err: unknown): string {
  const code = errnoCode(err)
  return `the sandbox could not be run: the worker failed to prepare or run it${code ? ` (${code})` : ''}; the worker's log has the details`
}

/** The first errno name (ENAMETOOLONG, ENOSPC, ...) on the error or its causes. */
function errnoCode(err: unknown): string | undefined {
  let e = err
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code
    // Only names of the errno table: any other string could be anything.
    if (typeof code === 'string' && Object.hasOwn(constants.errno, code)) return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}
