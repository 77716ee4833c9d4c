import { Job, type Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { Config } from '../../core/config.js'
import { AirlockError } from '../../core/errors.js'
import { addQueueEntry, queueEntry } from '../../core/redis-keys.js'
import { pipelined } from '../../core/redis.js'
import { resolveJobSpec, stepsTooLong, type JobRequest, type JobSpec } from '../../core/job-spec.js'
import { stepsTimeMs, stepsWallMs } from '../../core/test-cases.js'
import {
  JOB_ID_PATTERN,
  JobIdTakenError,
  newJobId,
  type CreateResult,
  type JobStore,
  type JobHead,
} from '../../core/job-store.js'
import { isFinalStatus } from '../../core/job-lifecycle/transitions.js'
import { keyedJobId, requestDigest } from '../../core/idempotency.js'
import type { Metrics } from '../../core/metrics.js'
import { jobLimitsOverQuota, tenantLimitsPolicy } from '../../core/quotas.js'
import { withinRate, type Quotas, type Submission, type TenantStore } from '../../core/tenant-store.js'
import type { WorkerRegistry } from '../../core/worker-registry.js'
import { toErrorResponse } from '../plugins/error-handler.js'
import type { JobWaiter } from './job-waiter.js'
import { submitConnection, type SubmitConnection } from './submit-connection.js'
import { now as clockNow } from '../../core/clock.js'

type BullTransaction = Parameters<Queue['backend']['addJobToTransaction']>[0]

/**
 * One job of a submission: accepted (its id and resolved spec; `replayed` when its
 * Idempotency-Key's job was there already, made by the same request), or refused.
 */
export type SubmitOutcome = Accepted | { error: Error }
export interface Accepted {
  id: string
  spec: JobSpec
  replayed?: boolean
}

const keyReused = () =>
  new AirlockError(
    'AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED',
    'this Idempotency-Key was sent with another request; a key stands for one request (use a new key for a new job)',
    [{ path: '/headers/idempotency-key', message: 'sent before with another request' }],
  )

/**
 * The error a batch answers whole, as a single submit would, so that it is retried whole:
 * when nothing of it was taken and every job was refused for a reason that passes (the
 * rate, the queue, the store, no worker; a fault of ours first). Undefined otherwise: the
 * batch answers each job in its place.
 */
export function wholeBatchRefusal(outcomes: readonly SubmitOutcome[]): Error | undefined {
  const errors = outcomes.flatMap((o) =>
    'error' in o ? [{ error: o.error, status: toErrorResponse(o.error).status }] : [],
  )
  if (errors.length === outcomes.length && errors.every((e) => e.status === 429 || e.status >= 500))
    return (errors.find((e) => e.status >= 500) ?? errors[0]!).error
  return undefined
}

/** A single submission waiting to go to Redis with the others of its turn. */
interface Gathered {
  request: JobRequest
  key: string | undefined
  log: FastifyBaseLogger
  resolve: (accepted: Accepted) => void
  reject: (err: unknown) => void
}

export interface JobServiceDeps {
  config: Config
  /** A command connection of the submissions' own: their reads and writes go on it. */
  submitRedis: Redis
  store: JobStore
  queue: Queue
  registry: WorkerRegistry
  tenants: TenantStore
  waiter: JobWaiter
  metrics: Metrics
  /** The tenant a key (by its digest) stands for now: asked again when a wait ends. */
  keyTenant: (digest: string) => Promise<string | undefined>
}

/**
 * What every API that takes jobs (/v1, the Judge0 and Piston adapters) does with one,
 * so there is one path through the queue and the store: submit it (the server's and
 * the tenant's limits, the submission rate, a worker that can isolate, the storage
 * and queue quotas, then the record and the queue entry), wait for its end, cancel
 * it. Each refusal is an AirlockError with its code.
 */
export class JobService {
  private submitClientReady: Promise<SubmitConnection> | undefined
  /** Single submissions waiting to go to Redis together (`submit`), by tenant. */
  private readonly gathering = new Map<string, Gathered[]>()
  /** Requests held open until a job ends, by tenant. */
  private readonly waits = new Map<string, number>()

  constructor(private readonly deps: JobServiceDeps) {}

  /** The submissions' connection, once the queue's has bullmq's scripts to copy. */
  private submitClient(): Promise<SubmitConnection> {
    this.submitClientReady ??= submitConnection(this.deps.submitRedis, this.deps.queue)
    // A connection that failed to start is asked for again by the next submission.
    this.submitClientReady.catch(() => {
      this.submitClientReady = undefined
    })
    return this.submitClientReady
  }

  /**
   * Checks, records and queues a job; its id and resolved spec. The tenant's submissions
   * that arrive within two turns of the event loop go to Redis together, as one batch
   * (up to AIRLOCK_MAX_BATCH_JOBS each): two round trips for all of them instead of two
   * each. Each is still accepted or refused on its own, in the order they arrived.
   */
  submit(tenant: string, request: JobRequest, log: FastifyBaseLogger, idempotencyKey?: string): Promise<Accepted> {
    return new Promise((resolve, reject) => {
      let waiting = this.gathering.get(tenant)
      if (!waiting) {
        const gathered: Gathered[] = []
        waiting = gathered
        this.gathering.set(tenant, gathered)
        // After two of the loop's poll phases: every request read in them has had its turn
        // by then. Clients whose answers went together send their next requests together,
        // and those arrive over a poll phase or two: one phase gathered ~3 jobs a batch at
        // saturation, two ~7 (and 12% less CPU a job), three no more (docs/benchmarks.md).
        setImmediate(() =>
          setImmediate(() => {
            this.gathering.delete(tenant)
            void this.submitGathered(tenant, gathered)
          }),
        )
      }
      waiting.push({ request, key: idempotencyKey, log, resolve, reject })
    })
  }

  private async submitGathered(tenant: string, gathered: readonly Gathered[]): Promise<void> {
    const size = this.deps.config.maxBatchJobs
    const chunks = Array.from({ length: Math.ceil(gathered.length / size) }, (_, i) =>
      gathered.slice(i * size, (i + 1) * size),
    )
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const requests = chunk.map((g) => g.request)
          const keys = chunk.map((g) => g.key)
          const outcomes = await this.submitMany(tenant, requests, (i) => chunk[i]!.log, keys)
          chunk.forEach((g, i) => {
            const outcome = outcomes[i]!
            if ('error' in outcome) g.reject(outcome.error)
            else g.resolve(outcome)
          })
        } catch (err) {
          for (const g of chunk) g.reject(err)
        }
      }),
    )
  }

  /**
   * Checks every job first, then records and queues the ones that pass together, in two
   * Redis round trips however many jobs: one reads the tenant's quotas, counts the
   * submissions against its rate, counts the workers that can isolate and looks for the
   * jobs the items' Idempotency-Keys name; the other writes each job's record and its
   * queue entry in one transaction. Each item ends accepted or refused with the error a
   * single submit would have had (an Error in `items` is refused as it is). A record
   * whose queue entry was not written is removed, and a queue entry whose record was
   * refused: never a job accepted that no worker sees, nor one a worker sees that was
   * refused. An item whose key's job is there (or comes earlier in `items`) is answered
   * with that job, not written again: neither the rate nor a worker's absence refuses it.
   */
  async submitMany(
    tenant: string,
    items: readonly (JobRequest | Error)[],
    log: FastifyBaseLogger | ((index: number) => FastifyBaseLogger),
    idempotencyKeys?: readonly (string | undefined)[],
  ): Promise<SubmitOutcome[]> {
    const { registry, store, tenants } = this.deps
    const counted = items.filter((item) => !(item instanceof Error)).length
    if (counted === 0) return items.map((item) => ({ error: item as Error }))
    const keyed = items.map((item, i) => {
      const key = idempotencyKeys?.[i]
      return key === undefined || item instanceof Error
        ? undefined
        : { id: keyedJobId(tenant, key), digest: requestDigest(item) }
    })
    const read = (await this.submitClient()).pipeline()
    const readSubmission = tenants.submission(read, tenant, counted)
    const workers = registry.countIsolating(read)
    const keyedIds = keyed.flatMap((k) => (k ? [k.id] : []))
    const makers = store.queueMakers(read, keyedIds)
    await read.exec()
    const submission = readSubmission()
    const { quotas } = submission
    const specs = items.map((item) => (item instanceof Error ? item : this.checked(tenant, item, quotas)))
    // Every job that passed its checks is either accepted or refused below, before any return.
    const out: SubmitOutcome[] = specs.map((spec) => (spec instanceof Error ? { error: spec } : { id: '', spec }))
    const made = new Map(makers.read().map((maker, n) => [keyedIds[n]!, maker]))
    // An item whose key an earlier one of these has: answered as that one is, once it is.
    const sameAs = new Map<number, number>()
    const firstOf = new Map<string, number>()
    // A replay's checks have been passed by the request that made its job; limits and
    // quotas changed since (an operator's) must not turn it into a refusal of a job that is.
    const replayedAsMade: number[] = []
    const stillQueued: { id: string; createdAt: number }[] = []
    const ready = specs.flatMap((spec, i) => {
      const k = keyed[i]
      const maker = k && made.get(k.id)
      if (maker && maker.tenant === tenant && maker.digest === k.digest) {
        if (maker.status === 'queued') stillQueued.push({ id: k.id, createdAt: maker.createdAt })
        if (spec instanceof Error) replayedAsMade.push(i)
        else out[i] = { id: k.id, spec, replayed: true }
        return []
      }
      if (spec instanceof Error) return []
      if (!k) return [i]
      const first = firstOf.get(k.id)
      if (maker) {
        out[i] = maker.tenant !== tenant ? { error: new JobIdTakenError(k.id) } : { error: keyReused() }
      } else if (first === undefined) {
        firstOf.set(k.id, i)
        return [i]
      } else if (keyed[first]!.digest === k.digest) sameAs.set(i, first)
      else out[i] = { error: keyReused() }
      return []
    })
    // Before anything is written: a fault here refuses the call's jobs, none of them accepted yet.
    await this.settleReplays(stillQueued, replayedAsMade, keyed, out)
    if (ready.length > 0) await this.accept(tenant, items, specs, ready, keyed, submission, workers, log, out)
    for (const [i, first] of sameAs) {
      const answer = out[first]!
      out[i] = 'error' in answer ? answer : { ...answer, spec: specs[i] as JobSpec, replayed: true }
    }
    return out
  }

  /**
   * What replays need beyond their makers, in one round trip, and only when there are any:
   * - a replayed job that is still queued gets its queue entry again if it has none (a
   *   claim runs a job once however often it is delivered). Its first request may have
   *   written the record, failed to write the entry and failed to take the record back
   *   (Redis gone between the two): answered 5xx, that request's retry is a replay, and
   *   without this the job would wait, accepted, for good. Only a missing entry is added:
   *   bullmq's add of an id it holds still writes (a counter, an event).
   * - a replay whose request today's limits refuse is answered with the spec its job was
   *   made with; one whose job has gone since (its retention ran out) is new again, and
   *   its refusal stands.
   */
  private async settleReplays(
    queued: readonly { id: string; createdAt: number }[],
    asMade: readonly number[],
    keyed: readonly ({ id: string } | undefined)[],
    out: SubmitOutcome[],
  ): Promise<void> {
    if (queued.length === 0 && asMade.length === 0) return
    const { queue, store } = this.deps
    const read = (await this.submitClient()).pipeline()
    const entries = queued.map(({ id }) => {
      const reply = pipelined<number>()
      read.exists(queue.toKey(id), reply.callback)
      return reply
    })
    const made = store.queueSpecs(
      read,
      asMade.map((i) => keyed[i]!.id),
    )
    await read.exec()
    await Promise.all(
      queued.flatMap(({ id, createdAt }, n) => {
        if (entries[n]!.value() > 0) return []
        return [addQueueEntry(queue, id, createdAt)]
      }),
    )
    made.read().forEach((spec, n) => {
      const i = asMade[n]!
      if (spec) out[i] = { id: keyed[i]!.id, spec, replayed: true }
    })
  }

  /** The rate, a worker that can isolate, then the write: each of `ready` ends in `out` accepted or refused. */
  private async accept(
    tenant: string,
    items: readonly (JobRequest | Error)[],
    specs: readonly (JobSpec | Error)[],
    ready: number[],
    keyed: readonly ({ id: string; digest: string } | undefined)[],
    submission: Submission,
    workers: { refusal: () => Promise<string | undefined> },
    log: FastifyBaseLogger | ((index: number) => FastifyBaseLogger),
    out: SubmitOutcome[],
  ): Promise<void> {
    const { config } = this.deps
    const { quotas } = submission
    const refuse = (indices: number[], error: Error) => {
      for (const i of indices) out[i] = { error }
    }
    const perSecond = quotas.submitsPerSecond ?? config.defaultSubmitsPerSecond
    if (perSecond > 0) {
      // As if each had come on its own, one after another: every well-formed job takes its
      // place in the second's count, a job its checks refused too, so a job's answer does
      // not depend on which others it was sent or gathered with.
      const places = new Map(
        items.flatMap((item, i) => (item instanceof Error ? [] : [i])).map((i, place) => [i, place]),
      )
      const over = ready.filter((i) => !withinRate(submission, perSecond, places.get(i)!))
      if (over.length > 0) {
        const message = `more than ${perSecond} submissions per second for this tenant; retry after ${submission.resetsInMs} ms`
        refuse(
          over,
          new AirlockError(
            'AIRLOCK_ERR_QUOTA_RATE',
            message,
            undefined,
            Math.max(1, Math.ceil(submission.resetsInMs / 1000)),
          ),
        )
        ready = ready.filter((i) => !over.includes(i))
        if (ready.length === 0) return
      }
    }
    const refusal = await workers.refusal()
    if (refusal) {
      refuse(ready, new AirlockError('AIRLOCK_ERR_ISOLATION_UNAVAILABLE', refusal))
      return
    }
    const jobs = ready.map((i) => ({
      index: i,
      id: keyed[i]?.id ?? newJobId(),
      spec: specs[i] as JobSpec,
      digest: keyed[i]?.digest,
    }))
    const byRuntime = new Map<string, number>()
    const accepted: string[] = []
    for (const { index, id, spec, error, replayed } of await this.write(tenant, jobs, quotas)) {
      if (error) {
        out[index] = { error }
        continue
      }
      out[index] = replayed ? { id, spec, replayed } : { id, spec }
      if (replayed) continue
      byRuntime.set(spec.runtime, (byRuntime.get(spec.runtime) ?? 0) + 1)
      // A request's own job has its own line; a batch's jobs share one (a line for each
      // was a tenth of a batch's CPU).
      if (typeof log === 'function') log(index).info({ jobId: id, runtime: spec.runtime }, 'job accepted')
      else accepted.push(id)
    }
    if (accepted.length > 0) (log as FastifyBaseLogger).info({ jobIds: accepted }, 'jobs accepted')
    const { metrics } = this.deps
    for (const [runtime, n] of byRuntime) metrics.jobsSubmitted.inc({ runtime, tenant: metrics.tenant(tenant) }, n)
  }

  /**
   * Each job's record and its queue entry, in one transaction on the queue's connection
   * (the keys share one hash slot). A job whose record a quota
   * refused, or whose entry Redis refused, has the other half taken away again.
   */
  private async write(
    tenant: string,
    jobs: { index: number; id: string; spec: JobSpec; digest: string | undefined }[],
    quotas: Quotas,
  ): Promise<((typeof jobs)[number] & { error?: Error; replayed?: boolean })[]> {
    const { store, queue } = this.deps
    const client = await this.submitClient()
    const tx = client.multi()
    const queuedAt = clockNow()
    const created = store.queueCreates(tx, tenant, jobs, queuedAt)
    for (const { id } of jobs) {
      const entry = queueEntry(id, queuedAt)
      const job = new Job(queue, entry.name, entry.data, entry.opts, id)
      // bullmq's own way to add to a shared transaction: the command is queued on `tx` at
      // once, one per job, after the create; its reply is read from the transaction's.
      void queue.backend.addJobToTransaction(tx as unknown as BullTransaction, job.asJSON(), id).catch(() => undefined)
    }
    let replies: [Error | null, unknown][] = []
    let ran: Error | undefined
    try {
      replies = (await tx.exec()) ?? []
    } catch (err) {
      // A transaction Redis refused whole (EXECABORT) carries why each command was refused:
      // a full Redis's OOM among them is what the caller is told.
      ran = ((err as { previousErrors?: Error[] }).previousErrors?.[0] ?? err) as Error
    }
    const results = created.read(replies)
    const written = await Promise.all(
      jobs.map(async (job, n) => {
        const result = results[n]!
        // The id is another job's: neither its record nor its queue entry is this call's to take back.
        if (result instanceof JobIdTakenError) return { ...job, error: result }
        // Its key's job came meanwhile (another request with the same key, a moment ahead):
        // that job and its queue entry are the other request's.
        if (!ran && !(result instanceof Error) && result.result === 'replay') return { ...job, replayed: true }
        if (!ran && !(result instanceof Error) && result.result === 'key-reused') return { ...job, error: keyReused() }
        const entryError =
          ran ??
          replies[created.commands + n]?.[0] ??
          (replies[created.commands + n] ? undefined : new Error('no reply from Redis'))
        const recorded = !ran && !(result instanceof Error) && result.result === 'created'
        if (recorded && !entryError) return job
        let taken: Awaited<ReturnType<JobStore['withdraw']>> | undefined
        if (recorded || ran) {
          // Taken back while still queued; a worker that has it by now (the transaction ran
          // and only its answer was lost) makes it accepted after all: it will run once. A
          // take-back whose answer did not come either is refused: Redis runs it after the
          // transaction (the same connection), so the job will not stand.
          taken = await store
            .withdraw(job.id, tenant, { made: { createdAt: queuedAt, digest: job.digest }, via: client.redis })
            .catch(() => undefined)
          if (taken === 'stands' && ran) return job
        }
        // After a transaction whose answer is unknown, a keyed id's queue entry may be that
        // of another request's job (bullmq adds no second entry for an id it has): it goes
        // with the record this call made, or with none (a create a quota refused, whose
        // entry the transaction still wrote), never with another request's.
        const ours = !ran || job.digest === undefined || taken === 'withdrawn' || taken === 'absent'
        if ((!entryError || ran) && ours) await queue.remove(job.id).catch(() => undefined)
        if (ran) return { ...job, error: ran }
        return {
          ...job,
          error:
            result instanceof Error
              ? result
              : result.result === 'created'
                ? entryError!
                : this.quotaRefusal(result, quotas),
        }
      }),
    )
    // ioredis marks a script loaded once per connection; after a SCRIPT FLUSH the commands
    // in a transaction fail with NOSCRIPT until a new connection sends the scripts again.
    // Only once the take-backs above have gone on this one.
    if (replies.some(([err]) => err?.message.includes('NOSCRIPT'))) client.reconnect()
    return written
  }

  /** The job's spec under the server's and the tenant's limits, or why it may not run. */
  private checked(tenant: string, request: JobRequest, quotas: Quotas): JobSpec | Error {
    const { config } = this.deps
    try {
      const spec = resolveJobSpec(request, tenantLimitsPolicy(config, quotas))
      const tooBig = jobLimitsOverQuota(spec.limits, quotas)
      const total = spec.tests ? stepsTimeMs(spec.limits, spec.tests.length) : 0
      if (spec.tests && quotas.maxTimeoutMs !== undefined && total > quotas.maxTimeoutMs) {
        tooBig.push({
          path: '/tests',
          message: stepsTooLong(spec.tests.length, spec.limits, total, quotas.maxTimeoutMs, "this tenant's"),
        })
      }
      if (tooBig.length > 0) {
        throw new AirlockError(
          'AIRLOCK_ERR_QUOTA_JOB_LIMITS',
          `limits above this tenant's quota: ${tooBig.map((d) => d.path.replace(/^\/limits\//, '')).join(', ')}`,
          tooBig,
        )
      }
      if (spec.isolation === 'runc' && !config.benchTenantSet.has(tenant)) {
        throw new AirlockError(
          'AIRLOCK_ERR_ISOLATION_FORBIDDEN',
          'isolation runc (no gVisor) is only for benchmark tenants (AIRLOCK_BENCH_TENANTS)',
          [{ path: '/isolation', message: 'not allowed for this tenant' }],
        )
      }
      return spec
    } catch (err) {
      return err as Error
    }
  }

  private quotaRefusal(created: { result: CreateResult; heldBytes?: number }, quotas: Quotas): AirlockError {
    const { config } = this.deps
    if (created.result === 'queued-quota') {
      return new AirlockError(
        'AIRLOCK_ERR_QUOTA_QUEUED',
        `this tenant has its quota of ${quotas.maxQueued ?? config.defaultMaxQueued} queued jobs; wait for some to start`,
        undefined,
        1,
      )
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
    // The owner first: another tenant's job costs the same to refuse as an unknown id.
    const view = JOB_ID_PATTERN.test(id) ? await store.headForTenant(id, tenant) : undefined
    if (!view) throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
    const result = await store.cancel(id, tenant)
    if (result.kind === 'missing') throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${id} not found`)
    if (result.kind === 'finished')
      throw new AirlockError('AIRLOCK_ERR_JOB_FINISHED', `job ${id} already ended with status ${result.status}`)
    if (result.kind === 'cancelled') {
      await queue.remove(id).catch(() => undefined)
      metrics.jobsFinished.inc({ runtime: view.job.runtime, tenant: metrics.tenant(tenant), status: 'cancelled' })
    }
  }

  /**
   * The tenant's job (its head) once it has ended, waiting at most as long as it may run (and
   * AIRLOCK_MAX_WAIT_MS); undefined when it has not ended by then or `signal` aborted
   * (the caller went away). A tenant holding AIRLOCK_MAX_WAITS_PER_TENANT waits on this
   * process waits no more: each request held is a connection, and one tenant's must not
   * take the process's every one. 401 when the caller's key was revoked meanwhile.
   */
  async waitForEnd(
    id: string,
    caller: {
      tenant: string
      keyDigest: string
      leaveTurn?: () => void
      takeTurn?: () => Promise<void>
      letGoOfBody?: () => void
    },
    spec: JobSpec,
    signal: AbortSignal,
  ): Promise<JobHead | undefined> {
    // A request held for minutes is not one of its tenant's requests being worked on, and
    // holds nothing of its body; what it does once the wait is over is, in its turn again.
    const wait = { limits: spec.limits, steps: spec.tests?.length ?? 1 }
    caller.leaveTurn?.()
    caller.letGoOfBody?.()
    let done: JobHead | undefined
    try {
      done = await this.waitFor(id, caller.tenant, wait, signal)
    } finally {
      await caller.takeTurn?.()
    }
    // What follows a wait (the job, or as it is now when the wait ran out) goes only to a
    // key that still stands: one revoked meanwhile gets 401, as an open stream is closed.
    if ((await this.deps.keyTenant(caller.keyDigest)) !== caller.tenant) throw keyRevokedWhileWaiting(id)
    return done
  }

  private async waitFor(
    id: string,
    tenant: string,
    wait: { limits: JobSpec['limits']; steps: number },
    signal: AbortSignal,
  ): Promise<JobHead | undefined> {
    const { config, store, waiter } = this.deps
    // A client gone while its job was submitted holds no wait (found by a review: 256
    // such left the tenant's waits all taken, each to its timeout, up to 330 s).
    if (signal.aborted) return undefined
    const held = this.waits.get(tenant) ?? 0
    if (held >= config.maxWaitsPerTenant) {
      const now = await store.head(id)
      return now && isFinalStatus(now.status) ? now : undefined
    }
    this.waits.set(tenant, held + 1)
    try {
      await waiter.ready()
      const waitMs = Math.min(config.maxWaitMs, stepsWallMs(wait.limits, wait.steps) + 60_000)
      const { finished, cancel } = waiter.wait(id, waitMs, signal)
      try {
        const now = await store.head(id)
        if (!(now && isFinalStatus(now.status))) await finished
      } finally {
        // A job that had ended already publishes nothing more: its wait (a timer and the
        // request's closures) would be held to the end of waitMs, up to AIRLOCK_MAX_WAIT_MS.
        cancel()
      }
      const done = await store.head(id)
      return done && isFinalStatus(done.status) ? done : undefined
    } finally {
      const left = (this.waits.get(tenant) ?? 1) - 1
      if (left > 0) this.waits.set(tenant, left)
      else this.waits.delete(tenant)
    }
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

/** 401 for a request whose key was revoked while it waited for its job. */
export function keyRevokedWhileWaiting(id: string): AirlockError {
  return new AirlockError(
    'AIRLOCK_ERR_UNAUTHORIZED',
    `the key this request came with was revoked while it waited; job ${id} is kept: read it with a key that stands`,
  )
}
