import type { V1Job, V1Pod } from '@kubernetes/client-node'
import type { JobOutcome } from '../../../core/job.js'
import { withoutHostPaths } from '../../../core/public-text.js'
import { classifyEnd } from '../outcome.js'
import { NO_SECCOMP_EXIT, NO_SECCOMP_MESSAGE, NO_SECCOMP_REASON } from '../sandbox-process.js'
import { CONTAINER_NAME } from './job-manifests.js'

/** What the Job and its pod say, reduced to what the executor acts on. */
export type Observation =
  | { kind: 'pending' }
  /** The scheduler cannot place the pod; an error once it has lasted too long. */
  | { kind: 'unschedulable'; message: string }
  | { kind: 'running'; startedAt: number }
  | {
      kind: 'ended'
      end: Pick<JobOutcome, 'status' | 'exitCode' | 'signal' | 'reason'>
      startedAt: number | null
      finishedAt: number | null
    }
  /** It will never start: a reason the user can act on. */
  | { kind: 'cannot-start'; reason: string }

// Waiting reasons a container does not recover from without someone changing something.
const IMAGE_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull'])
const CONFIG_REASONS = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError'])

function time(t: Date | string | undefined): number | null {
  if (t === undefined) return null
  const ms = new Date(t).getTime()
  return Number.isNaN(ms) ? null : ms
}

/**
 * Why the cluster ended a pod that was running, when it did: the kubelet's eviction
 * (node pressure), a preemption, a drain or a node shutdown. The container's exit code
 * is then the signal it was sent, not its program's doing. Null for a pod left alone.
 */
export function podDisruption(pod: V1Pod | undefined): string | null {
  const target = pod?.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True')
  if (target)
    return `the cluster ended its pod (${target.reason ?? 'DisruptionTarget'}): ${withoutHostPaths(target.message ?? 'no detail')}`
  // Before Kubernetes 1.26 (no DisruptionTarget) an eviction shows only as the pod's reason.
  if (pod?.status?.phase === 'Failed' && pod.status.reason)
    return `the cluster ended its pod (${pod.status.reason}): ${withoutHostPaths(pod.status.message ?? 'no detail')}`
  return null
}

export interface ObserveLimits {
  timeoutMs: number
  memoryMb: number
}

/**
 * The Job and its newest pod -> an Observation. Pure. The Job controller's deadline
 * wins over what the pod shows (it killed the pod); a container's OOMKilled wins over
 * the SIGKILL exit code it produced, as with the local executor.
 */
export function observe(job: V1Job | undefined, pod: V1Pod | undefined, limits: ObserveLimits): Observation {
  const failed = job?.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True')
  const container = pod?.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME)
  const startedAt = time(container?.state?.running?.startedAt ?? container?.state?.terminated?.startedAt)
  if (failed?.reason === 'DeadlineExceeded') {
    return {
      kind: 'ended',
      end: classifyEnd({ exitStatus: null, timedOut: true, cancelled: false, oomKills: 0, ...limits }),
      startedAt,
      finishedAt: time(failed.lastTransitionTime),
    }
  }
  const terminated = container?.state?.terminated
  if (terminated && terminated.exitCode === NO_SECCOMP_EXIT && terminated.message?.trim() === NO_SECCOMP_MESSAGE) {
    // The launcher ran nothing of the job: the node's fault, not the program's. The job's
    // own code could write the same words, but only about its own run.
    return {
      kind: 'ended',
      end: { status: 'error', exitCode: null, signal: null, reason: NO_SECCOMP_REASON },
      startedAt,
      finishedAt: time(terminated.finishedAt),
    }
  }
  if (terminated) {
    const end = classifyEnd({
      exitStatus: terminated.exitCode,
      timedOut: false,
      cancelled: false,
      oomKills: terminated.reason === 'OOMKilled' ? 1 : 0,
      hostKill: podDisruption(pod),
      ...limits,
    })
    return { kind: 'ended', end, startedAt, finishedAt: time(terminated.finishedAt) }
  }
  const waiting = container?.state?.waiting
  if (waiting?.reason && IMAGE_REASONS.has(waiting.reason)) {
    return {
      kind: 'cannot-start',
      reason: `the sandbox image ${container?.image ?? ''} could not be pulled (${waiting.reason}): ${withoutHostPaths(waiting.message ?? 'no detail')}`,
    }
  }
  if (waiting?.reason && CONFIG_REASONS.has(waiting.reason)) {
    return {
      kind: 'cannot-start',
      reason: `the sandbox container could not be created (${waiting.reason}): ${withoutHostPaths(waiting.message ?? 'no detail')}`,
    }
  }
  if (container?.state?.running) return { kind: 'running', startedAt: startedAt ?? Date.now() }
  if (pod?.status?.phase === 'Failed') {
    return {
      kind: 'cannot-start',
      reason: `the sandbox pod failed before its program ran (${pod.status.reason ?? 'Failed'}): ${withoutHostPaths(pod.status.message ?? 'no detail')}`,
    }
  }
  const scheduled = pod?.status?.conditions?.find((c) => c.type === 'PodScheduled')
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return { kind: 'unschedulable', message: scheduled.message ?? 'no node fits' }
  }
  if (failed) {
    return {
      kind: 'cannot-start',
      reason: `the Kubernetes Job failed (${failed.reason ?? 'Failed'}): ${failed.message ?? 'no detail'}`,
    }
  }
  return { kind: 'pending' }
}

/**
 * Whether the API server's refusal of a sandbox pod may clear by itself: a full
 * ResourceQuota frees up as other jobs end. A LimitRange or Pod Security refusal
 * stays whatever happens. Pure.
 */
export function isTransientRefusal(message: string): boolean {
  return /exceeded quota/.test(message)
}
