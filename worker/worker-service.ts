import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { DelayedError, Queue, WaitingError, Worker, type Job as BullJob } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../core/config.js'
import { tenantDefaults } from '../core/quotas.js'
import { JobStore } from '../core/job-store.js'
import type { Metrics } from '../core/metrics.js'
import { createRedis } from '../core/redis.js'
import { keepClockInSync, now as clockNow, sinceClockStep } from '../core/clock.js'
import { performance } from 'node:perf_hooks'
import { addQueueEntry, QUEUE_NAME, redisKeys } from '../core/redis-keys.js'
import {
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TTL_MS,
  WorkerRegistry,
  type WorkerHeartbeat,
} from '../core/worker-registry.js'
import type { Executor, IsolationReport } from './executors/executor.js'
import { JobRunner } from './job-runner.js'

const THROTTLE_DELAY_MS = 250

export interface QueuedJobData {
  jobId: string
}

/**
 * A worker process: checks that its executor can isolate jobs, then takes jobs from
 * the queue. If isolation cannot be guaranteed it takes none (fail closed) and says
 * why in its heartbeat, which the API turns into 503s for new jobs. It checks again
 * every AIRLOCK_ISOLATION_CHECK_INTERVAL_MS and pauses or resumes accordingly.
 */
export class WorkerService {
  readonly id = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
  private readonly keys
  private readonly redis: Redis
  private readonly subscriber: Redis
  private readonly bullConnection: Redis
  private readonly registry: WorkerRegistry
  private readonly store: JobStore
  private runner: JobRunner | undefined
  private worker: Worker<QueuedJobData> | undefined
  /** Work of the heartbeat still under way, by kind: one of each at a time (it can outlast a beat). */
  private readonly background: { sweeping?: Promise<void>; reaping?: Promise<void> } = {}
  /** For hand-backs whose delivery BullMQ no longer holds (handBack); made when first needed. */
  private queue: Queue<QueuedJobData> | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private checker: NodeJS.Timeout | undefined
  private isolationReport: IsolationReport | undefined
  private versions: Record<string, string> = {}
  private stopping = false
  /** When this worker's Redis connection last became ready (performance.now()). */
  private connectedSince = performance.now()
  private stopClockSync: (() => void) | undefined
  private checking: Promise<void> | undefined

  constructor(
    private readonly config: Config,
    private readonly executor: Executor,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.keys = redisKeys(config.redisPrefix)
    this.redis = createRedis(config.redisUrl, 'blocking')
    this.subscriber = createRedis(config.redisUrl, 'blocking')
    this.bullConnection = createRedis(config.redisUrl, 'blocking')
    for (const c of [this.redis, this.subscriber, this.bullConnection])
      c.on('error', (err) => logger.warn({ err: err.message }, 'redis error'))
    this.redis.on('ready', () => {
      this.connectedSince = performance.now()
    })
    this.registry = new WorkerRegistry(this.redis, this.keys)
    this.store = new JobStore(this.redis, this.keys, config.jobRetentionSeconds, tenantDefaults(config))
  }

  get isolation(): IsolationReport | undefined {
    return this.isolationReport
  }

  async start(): Promise<void> {
    await Promise.all([this.redis.connect(), this.subscriber.connect(), this.bullConnection.connect()])
    // Heartbeats, and whose are stale, go by Redis's clock, not this host's (core/clock.ts).
    this.stopClockSync = await keepClockInSync(this.redis, (err) =>
      this.logger.warn({ err }, "could not read Redis's clock"),
    )
    const reaped = await this.executor.reapOrphans()
    if (reaped > 0) this.logger.warn({ reaped }, 'removed sandboxes left by workers that died')
    this.versions = await this.executor.runtimeVersions()
    await this.subscriber.subscribe(this.keys.cancelChannel)
    this.subscriber.on('message', (_channel: string, jobId: string) => this.runner?.cancel(jobId))

    await this.checkIsolation()
    this.heartbeat = setInterval(() => {
      void this.beat().catch((err: unknown) => this.logger.warn({ err }, 'heartbeat failed'))
      this.inBackground('sweeping', () => this.sweepLost(), 'sweep of lost jobs failed')
      // Sandboxes of a worker process on this host that died go now, not when a worker next
      // starts: a dead worker's sandbox ran on past its job's time limit and its end. On
      // its own, without Redis.
      this.inBackground(
        'reaping',
        async () => {
          const reaped = await this.executor.reapOrphans()
          if (reaped > 0) this.logger.warn({ reaped }, 'removed sandboxes left by a worker that died')
        },
        "removal of dead workers' sandboxes failed",
      )
    }, HEARTBEAT_INTERVAL_MS)
    this.heartbeat.unref()
    this.checker = setInterval(() => void this.checkIsolation(), this.config.isolationCheckIntervalMs)
    this.checker.unref()
  }

  private failedChecks = 0
  /** Claims in a row that found their tenant at its running quota. */
  private throttledRun = 0
  private recheck: NodeJS.Timeout | undefined

  /**
   * A failed check is tried again soon (1 s, doubling up to the interval), not only at
   * the next interval: a passing pressure (say, the process short of descriptors for a
   * moment) must not keep a worker paused for a minute. It stays paused until a check passes.
   */
  private recheckSoon(): void {
    if (this.stopping || this.recheck) return
    const delayMs = Math.min(this.config.isolationCheckIntervalMs, 1000 * 2 ** Math.min(this.failedChecks++, 10))
    this.recheck = setTimeout(() => {
      this.recheck = undefined
      void this.checkIsolation()
    }, delayMs)
    this.recheck.unref()
  }

  /** Runs the executor's isolation check; takes jobs only while it passes. */
  private async checkIsolation(): Promise<void> {
    if (this.stopping || this.checking) return
    this.checking = this.executor
      .checkIsolation()
      .then((report) => this.applyIsolation(report))
      .finally(() => {
        this.checking = undefined
      })
    await this.checking
  }

  private async applyIsolation(report: IsolationReport): Promise<void> {
    if (this.stopping) return
    const was = this.isolationReport?.ok
    this.isolationReport = report
    // Paused before anything waits on Redis: a job handed back for a lost isolation is at
    // the head of the waiting list, and this worker took it again while its heartbeat was
    // on its way (code review L2).
    const paused = !report.ok && this.worker && !this.worker.isPaused() ? this.worker.pause(true) : undefined
    await this.beat().catch((err: unknown) => this.logger.warn({ err }, 'heartbeat failed'))
    // A later report came in while the heartbeat was on its way (a launch lost isolation
    // after this check passed): that one decides, and this one must not resume the worker.
    if (this.isolationReport !== report) return
    if (!report.ok) {
      if (was !== false)
        this.logger.error(
          { reason: report.reason },
          'isolation cannot be guaranteed; this worker takes no jobs until it can',
        )
      await paused
      this.recheckSoon()
      return
    }
    this.failedChecks = 0
    if (was !== true)
      this.logger.info(
        { executor: this.executor.name, isolation: report.detail, runtimes: this.versions },
        'worker ready',
      )
    if (!this.worker) this.startTakingJobs(report)
    else if (this.worker.isPaused()) this.worker.resume()
  }

  private startTakingJobs(report: IsolationReport): void {
    if (!report.isolation) throw new Error('an executor that can isolate must describe its isolation')
    const runner = new JobRunner(
      this.store,
      this.executor,
      report.isolation,
      this.id,
      this.logger,
      this.metrics,
      (reason) => {
        void this.applyIsolation({
          ok: false,
          technology: report.technology,
          detail: report.detail,
          reason,
          isolation: null,
        })
      },
    )
    this.runner = runner
    this.worker = new Worker<QueuedJobData>(
      QUEUE_NAME,
      async (job, token) => {
        // Delivered after isolation was lost: a fetch of another of this worker's slots was
        // already waiting when it paused, and took the job handed back for it. It goes back
        // untouched, not claimed or launched again.
        if (this.isolationReport?.ok !== true) {
          if (!this.worker!.isPaused()) void this.worker!.pause(true).catch(() => undefined)
          await this.handBack(job, token, 0)
          throw new WaitingError()
        }
        const result = await runner.run(job.data.jobId)
        if (result === 'done') this.throttledRun = 0
        if (result === 'handed-back' || result === 'throttled') {
          // Back to the queue, BullMQ's way to release a job unfinished: at once for
          // another worker, or after a moment when its tenant is at its running quota,
          // so that this worker takes the next job (fair share; docs/fair-share.md).
          // A run of throttled claims (a tenant with many jobs queued behind its quota)
          // backs off, up to 16 times the delay, so the gate is not a hot loop.
          this.throttledRun = result === 'throttled' ? Math.min(this.throttledRun + 1, 64) : 0
          const delayMs =
            result === 'throttled'
              ? THROTTLE_DELAY_MS * (1 + Math.floor(this.throttledRun / 4)) * (1 + Math.random())
              : 0
          await this.handBack(job, token, delayMs)
          throw delayMs === 0 ? new WaitingError() : new DelayedError()
        }
      },
      {
        connection: this.bullConnection,
        prefix: this.keys.bullPrefix,
        concurrency: this.config.workerConcurrency,
        // A job whose lock lapses is handed out once more; JobRunner then records it as
        // lost rather than running it twice.
        maxStalledCount: 1,
        lockDuration: this.config.jobLockMs,
        stalledInterval: this.config.jobLockMs,
        removeOnComplete: { count: 0 },
        removeOnFail: { count: 0 },
      },
    )
    this.worker.on('error', (err) => this.logger.error({ err }, 'queue worker error'))
  }

  /** Starts `work` unless the last of its kind is still under way; a failure is logged. */
  private inBackground(kind: keyof WorkerService['background'], work: () => Promise<void>, failed: string): void {
    this.background[kind] ??= work()
      .catch((err: unknown) => this.logger.warn({ err }, failed))
      .finally(() => {
        delete this.background[kind]
      })
  }

  /**
   * Puts a delivered job back on the queue, its record `queued` again. When BullMQ no
   * longer holds the delivery (its lock lapsed while this worker was frozen, and the entry
   * was handed out again and done with), the move fails: the job gets an entry anew, or
   * its record would stay `queued` with nothing on the queue to deliver it, for good.
   */
  private async handBack(job: BullJob<QueuedJobData>, token: string | undefined, delayMs: number): Promise<void> {
    try {
      // BullMQ dates a delayed entry by this host's clock, and the others take it once theirs
      // reach that date: an entry handed back "now" by a host whose clock was 10 min fast
      // waited 10 min (review 19). One for at once goes straight back to the waiting list.
      if (delayMs === 0) await job.moveToWait(token)
      // Dated on the deployment's clock (core/clock.ts), not by Job.moveToDelayed's
      // Date.now(): a worker 10 min fast parked a throttled job for 10 min (review 20).
      else await this.worker!.backend.moveToDelayed(job.id!, clockNow(), delayMs, token, { skipAttempt: true })
    } catch (err) {
      this.logger.warn(
        { jobId: job.data.jobId, err: (err as Error).message },
        'could not hand the delivery back (the queue no longer held it, or Redis refused); the job is queued anew',
      )
      // At once: a delay would be dated by this host's clock (BullMQ's add). A throttled job
      // is handed back again, by the path above.
      this.queue ??= new Queue(QUEUE_NAME, { connection: this.bullConnection, prefix: this.keys.bullPrefix })
      await addQueueEntry(this.queue, job.data.jobId, clockNow())
    }
  }

  /**
   * Ends, as `error`, running jobs whose worker has stopped beating: the program may have
   * run, so it is not run again (at most once), but the job still gets its one final
   * status (at-least-once completion). Where the sandbox outlived its worker (a
   * Kubernetes Job), this worker follows it to its real result instead. BullMQ's
   * stalled-job check would get there too, but only once the job's lock lapses and only
   * while BullMQ still holds the job.
   */
  private async sweepLost(): Promise<void> {
    if (this.stopping || !this.isolationReport?.ok) return
    // After a Redis outage every heartbeat looks stale; give live workers a full TTL to
    // beat again before taking anyone for dead.
    if (performance.now() - this.connectedSince < HEARTBEAT_TTL_MS) return
    // Likewise after Redis's clock stepped: the others may beat on their old reading of it.
    if (sinceClockStep() < HEARTBEAT_TTL_MS) return
    const running = await this.store.running()
    if (running.length === 0) return
    const live = new Set((await this.registry.live()).map((w) => w.id))
    for (const { id, worker } of running) {
      if (worker === this.id || live.has(worker)) continue
      // Adoption follows a sandbox to its end, which takes a while: it runs on.
      void this.runner
        ?.adoptOrLose(id, worker)
        .catch((err: unknown) => this.logger.warn({ err, jobId: id }, 'could not take over a lost job'))
    }
  }

  private async beat(): Promise<void> {
    const report = this.isolationReport
    if (!report) return
    const hb: WorkerHeartbeat = {
      id: this.id,
      executor: this.executor.name,
      isolation: { ok: report.ok, technology: report.technology, detail: report.detail, reason: report.reason },
      runtimes: this.versions,
      at: clockNow(),
    }
    await this.registry.beat(hb)
  }

  /**
   * Stops taking jobs and lets running ones finish for up to `graceMs`; past that, kills
   * their sandboxes: a job whose program started ends `error` (never run twice), one not
   * launched yet goes back to the queue (another worker runs it). Nothing accepted is lost.
   */
  async stop(graceMs = this.config.shutdownGraceMs): Promise<void> {
    this.stopping = true
    clearInterval(this.checker)
    clearTimeout(this.recheck)
    // A probe sandbox in flight must finish before the executor removes its state.
    await this.checking?.catch(() => undefined)
    if (this.worker) {
      const closing = this.worker.close()
      const timer = setTimeout(() => this.runner?.interruptAll(), graceMs)
      await closing
      clearTimeout(timer)
    }
    // Beats go on while running jobs finish, so no other worker takes them for lost.
    clearInterval(this.heartbeat)
    this.stopClockSync?.()
    await Promise.all(Object.values(this.background))
    await this.registry.remove(this.id).catch(() => undefined)
    await this.runner?.flushCleanups()
    await this.executor.close()
    await this.queue?.close()
    this.subscriber.disconnect()
    this.bullConnection.disconnect()
    this.redis.disconnect()
  }
}
