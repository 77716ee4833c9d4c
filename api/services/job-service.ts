import type { Queue } from 'bullmq'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { Config } from '../../core/config.js'
import { AirlockError } from '../../core/errors.js'
import { resolveJobSpec, stepsTooLong, type JobRequest, type JobSpec } from '../../core/job-spec.js'
import { stepsTimeMs, stepsWallMs } from '../../core/test-cases.js'
import { JOB_ID_PATTERN, newJobId, type CreateResult, type JobStore, type JobView } from '../../core/job-store.js'
import { isFinalStatus } from '../../core/job-status.js'
import type { Metrics } from '../../core/metrics.js'
import { jobLimitsOverQuota, tenantLimitsPolicy } from '../../core/quotas.js'
import type { Quotas, TenantStore } from '../../core/tenant-store.js'
import { isolationRefusal, type WorkerRegistry } from '../../core/worker-registry.js'
import type { JobWaiter } from './job-waiter.js'

/** One job of a submission: accepted (its id and resolved spec), or refused. */
export type SubmitOutcome = { id: string; spec: JobSpec } | { error: Error }

export interface JobServiceDeps {
  config: Config
  store: JobStore
  queue: Queue
  registry: WorkerRegistry
  tenants: TenantStore
  waiter: JobWaiter
  metrics: Metrics
}

/**
 * What every API that takes jobs (/v1, the Judge0 and Piston adapters) does with one,
 * so there is one path through the queue and the store: submit it (the server's and
 * the tenant's limits, the submission rate, a worker that can isolate, the storage
 * and queue quotas, then the record and the queue entry), wait for its end, cancel
 * it. Each refusal is an AirlockError with its code.
 */
export class JobService {
  constructor(private readonly deps: JobServiceDeps) {}

  /** Checks, records and queues a job; its id and resolved spec. */
  async submit(tenant: string, request: JobRequest, log: FastifyBaseLogger): Promise<{ id: string; spec: JobSpec }> {
    const [outcome] = await this.submitMany(tenant, [request], log)
    if ('error' in outcome!) throw outcome.error
    return outcome!
  }

  /**
   * Checks every job first, then records and queues the ones that pass together: one
   * rate count for all of them, one look at the workers, the records in one pipeline and
   * the queue entries in one more. Each item ends accepted or refused with the error a
   * single submit would have had (an Error in `items` is refused as it is). A queue write
   * that fails removes the records it was for: never a job accepted that no worker sees.
   */
  async submitMany(tenant: string, items: readonly (JobRequest | Error)[], log: FastifyBaseLogger): Promise<SubmitOutcome[]> {
    const { config, store, queue, registry, tenants, metrics } = this.deps
    const quotas = await tenants.quotas(tenant)
    const specs = items.map((item) => (item instanceof Error ? item : this.checked(tenant, item, quotas)))
    // Every job that passed its checks is either accepted or refused below, before any return.
    const out: SubmitOutcome[] = specs.map((spec) => (spec instanceof Error ? { error: spec } : { id: '', spec }))
    let ready = specs.flatMap((spec, i) => (spec instanceof Error ? [] : [i]))
    if (ready.length === 0) return out
    const refuse = (indices: number[], error: Error) => {
      for (const i of indices) out[i] = { error }
    }
    const perSecond = quotas.submitsPerSecond ?? config.defaultSubmitsPerSecond
    if (perSecond > 0) {
      const { allowed, waitMs } = await tenants.takeSubmissions(tenant, perSecond, ready.length)
      if (allowed < ready.length) {
        refuse(ready.slice(allowed), new AirlockError('AIRLOCK_ERR_QUOTA_RATE', `more than ${perSecond} submissions per second for this tenant; retry after ${waitMs} ms`, undefined, Math.max(1, Math.ceil(waitMs / 1000))))
        ready = ready.slice(0, allowed)
        if (ready.length === 0) return out
      }
    }
    const refusal = isolationRefusal(await registry.live())
    if (refusal) {
      refuse(ready, new AirlockError('AIRLOCK_ERR_ISOLATION_UNAVAILABLE', refusal))
      return out
    }

    const jobs = ready.map((i) => ({ index: i, id: newJobId(), spec: specs[i] as JobSpec }))
    const created = await store.createMany(tenant, jobs)
    const accepted = jobs.filter((job, n) => {
      const result = created[n]!
      if (!(result instanceof Error) && result.result === 'created') return true
      out[job.index] = { error: result instanceof Error ? result : this.quotaRefusal(result, quotas) }
      return false
    })
    if (accepted.length === 0) return out
    try {
      await queue.addBulk(accepted.map(({ id }) => ({ name: 'run', data: { jobId: id }, opts: { jobId: id, removeOnComplete: true, removeOnFail: true } })))
    } catch (err) {
      // Never answer 202 for a job no worker will see.
      await Promise.all(accepted.map(({ id }) => store.remove(id, tenant).catch(() => undefined)))
      refuse(
        accepted.map((j) => j.index),
        err as Error,
      )
      return out
    }
    for (const { index, id, spec } of accepted) {
      out[index] = { id, spec }
      log.info({ jobId: id, runtime: spec.runtime }, 'job accepted')
      metrics.jobsSubmitted.inc({ runtime: spec.runtime, tenant: metrics.tenant(tenant) })
    }
    return out
  }

  /** The job's spec under the server's and the tenant's limits, or why it may not run. */
  private checked(tenant: string, request: JobRequest, quotas: Quotas): JobSpec | Error {
    const { config } = this.deps
    try {
      const spec = resolveJobSpec(request, tenantLimitsPolicy(config, quotas))
      const tooBig = jobLimitsOverQuota(spec.limits, quotas)
      const total = spec.tests ? stepsTimeMs(spec.limits, spec.tests.length) : 0
      if (spec.tests && quotas.maxTimeoutMs !== undefined && total > quotas.maxTimeoutMs) {
        tooBig.push({ path: '/tests', message: stepsTooLong(spec.tests.length, spec.limits, total, quotas.maxTimeoutMs, "this tenant's") })
      }
      if (tooBig.length > 0) {
        throw new AirlockError('AIRLOCK_ERR_QUOTA_JOB_LIMITS', `limits above this tenant's quota: ${tooBig.map((d) => d.path.replace(/^\/limits\//, '')).join(', ')}`, tooBig)
      }
      if (spec.isolation === 'runc' && !config.benchTenantSet.has(tenant)) {
        throw new AirlockError('AIRLOCK_ERR_ISOLATION_FORBIDDEN', 'isolation runc (no gVisor) is only for benchmark tenants (AIRLOCK_BENCH_TENANTS)', [{ path: '/isolation', message: 'not allowed for this tenant' }])
      }
      return spec
    } catch (err) {
      return err as Error
    }
  }

  private quotaRefusal(created: { result: CreateResult; heldBytes?: number }, quotas: Quotas): AirlockError {
    const { config } = this.deps
    if (created.result === 'queued-quota') {
      return new AirlockError('AIRLOCK_ERR_QUOTA_QUEUED', `this tenant has its quota of ${quotas.maxQueued ?? config.defaultMaxQueued} queued jobs; wait for some to start`, undefined, 1)
    }
    const max = quotas.maxStoredBytes ?? config.defaultMaxStoredBytes
    return new AirlockError(
      'AIRLOCK_ERR_QUOTA_STORAGE',
      `this job would take this tenant past its storage quota (${created.heldBytes} of ${max} bytes held; a job reserves its input, twice limits.outputBytes, AIRLOCK_ARTIFACT_BYTES and room for its compile and test results until it ends, and a finished job frees its bytes when it expires)`,
    )
  }

  /**
   * Cancels the tenant's job: a queued one at once, a running one by killing its
   * sandbox (it turns cancelled shortly). 404 for another tenant's or an unknown job,
   * 409 for one that had already ended.
   */
  async cancel(id: string, tenant: string): Promise<void> {
    const { store, queue, metrics } = this.deps
    // Only a job id is looked up: any other string could name another kind of key.
    const view = JOB_ID_PATTERN.test(id) ? await store.view(id) : undefined
    if (!view || view.tenant !== tenant) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
    const result = await store.cancel(id, tenant)
    if (result.kind === 'missing') throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
    if (result.kind === 'finished') throw new AirlockError('AIRLOCK_ERR_JOB_FINISHED', `job ${id} already ended with status ${result.status}`)
    if (result.kind === 'cancelled') {
      await queue.remove(id).catch(() => undefined)
      metrics.jobsFinished.inc({ runtime: view.job.runtime, tenant: metrics.tenant(tenant), status: 'cancelled' })
    }
  }

  /**
   * The job once it has ended, waiting at most as long as it may run (and
   * AIRLOCK_MAX_WAIT_MS); undefined when it has not ended by then or `signal` aborted
   * (the caller went away).
   */
  async waitForEnd(id: string, spec: JobSpec, signal: AbortSignal): Promise<JobView | undefined> {
    const { config, store, waiter } = this.deps
    await waiter.ready()
    const waitMs = Math.min(config.maxWaitMs, stepsWallMs(spec.limits, spec.tests?.length ?? 1) + 60_000)
    const { finished } = waiter.wait(id, waitMs, signal)
    const now = await store.view(id)
    if (!(now && isFinalStatus(now.status))) await finished
    const done = await store.view(id)
    return done && isFinalStatus(done.status) ? done : undefined
  }
}

/**
 * Aborted when the caller's connection closes before its answer has been sent: for a
 * request that waits for a job (`?wait`, Judge0's wait, Piston's execute). The
 * response's close, not the request's: Node closes a request once its body is read,
 * before any handler runs.
 */
export function callerGone(reply: FastifyReply): { signal: AbortSignal; stop: () => void } {
  const controller = new AbortController()
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort()
  }
  if (reply.raw.destroyed) controller.abort()
  else reply.raw.once('close', onClose)
  return { signal: controller.signal, stop: () => reply.raw.off('close', onClose) }
}
