import { constants } from 'node:os'
import type { JobOutcome } from '../../core/job.js'

export interface SandboxEnd {
  /** runsc's exit status: the code, or 128 + signal number. null if unknown. */
  exitStatus: number | null
  timedOut: boolean
  cancelled: boolean
  /** OOM kills counted by the sandbox's memory cgroup. */
  oomKills: number
  timeoutMs: number
  memoryMb: number
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]))

/**
 * How a sandbox ended -> the job's status. Pure. Our own decisions (timeout, cancel)
 * win over what the program's exit status says, since we caused the kill; a memory
 * cgroup OOM kill wins over the SIGKILL it produced.
 */
export function classifyEnd(end: SandboxEnd): Pick<JobOutcome, 'status' | 'exitCode' | 'signal' | 'reason'> {
  const signalNo = end.exitStatus !== null && end.exitStatus > 128 ? end.exitStatus - 128 : null
  const signal = signalNo === null ? null : (SIGNAL_NAMES.get(signalNo) ?? `SIG${signalNo}`)
  const exitCode = end.exitStatus !== null && signalNo === null ? end.exitStatus : null
  if (end.cancelled) return { status: 'cancelled', exitCode, signal, reason: 'cancelled while running' }
  if (end.timedOut) return { status: 'timeout', exitCode, signal, reason: `exceeded the time limit of ${end.timeoutMs} ms` }
  if (end.oomKills > 0) return { status: 'oom', exitCode, signal, reason: `exceeded the memory limit of ${end.memoryMb} MiB` }
  if (end.exitStatus === null) return { status: 'error', exitCode: null, signal: null, reason: 'the sandbox ended without an exit status' }
  if (end.exitStatus === 0) return { status: 'succeeded', exitCode: 0, signal: null, reason: null }
  return { status: 'failed', exitCode, signal, reason: signal ? `killed by ${signal}` : `exited with code ${exitCode}` }
}
