import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../core/config.js'
import { JobStore } from '../core/job-store.js'
import { createRedis } from '../core/redis.js'
import { QUEUE_NAME, redisKeys } from '../core/redis-keys.js'
import { HEARTBEAT_INTERVAL_MS, WorkerRegistry, type WorkerHeartbeat } from '../core/worker-registry.js'
import type { Executor, IsolationReport } from './executors/executor.js'
import { JobRunner } from './job-runner.js'

export interface QueuedJobData {
  jobId: string
}

/**
 * A worker process: checks that its executor can isolate jobs, then takes jobs from
 * the queue. If isolation cannot be guaranteed it takes none (fail closed) and says
 * why in its heartbeat, which the API turns into 503s for new jobs.
 */
export class WorkerService {
  readonly id = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
  private readonly keys
  private readonly redis: Redis
  private readonly subscriber: Redis
  private readonly bullConnection: Redis
  private readonly registry: WorkerRegistry
  private runner: JobRunner | undefined
  private worker: Worker<QueuedJobData> | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private isolationReport: IsolationReport | undefined
  private versions: Record<string, string> = {}

  constructor(
    private readonly config: Config,
    private readonly executor: Executor,
    private readonly logger: Logger,
  ) {
    this.keys = redisKeys(config.redisPrefix)
    this.redis = createRedis(config.redisUrl, 'blocking')
    this.subscriber = createRedis(config.redisUrl, 'blocking')
    this.bullConnection = createRedis(config.redisUrl, 'blocking')
    this.registry = new WorkerRegistry(this.redis, this.keys)
  }

  get isolation(): IsolationReport | undefined {
    return this.isolationReport
  }

  async start(): Promise<void> {
    await Promise.all([this.redis.connect(), this.subscriber.connect(), this.bullConnection.connect()])
    const reaped = await this.executor.reapOrphans()
    if (reaped > 0) this.logger.warn({ reaped }, 'removed sandboxes left by workers that died')

    this.isolationReport = await this.executor.checkIsolation()
    this.versions = await this.executor.runtimeVersions()
    await this.beat()
    this.heartbeat = setInterval(() => void this.beat().catch((err: unknown) => this.logger.warn({ err }, 'heartbeat failed')), HEARTBEAT_INTERVAL_MS)
    this.heartbeat.unref()

    if (!this.isolationReport.ok) {
      this.logger.error({ reason: this.isolationReport.reason }, 'isolation cannot be guaranteed; this worker will not run jobs')
      return
    }
    this.logger.info({ executor: this.executor.name, isolation: this.isolationReport.detail, runtimes: this.versions }, 'worker ready')

    const store = new JobStore(this.redis, this.keys, this.config.jobRetentionSeconds)
    if (!this.isolationReport.isolation) throw new Error('an executor that can isolate must describe its isolation')
    const runner = new JobRunner(store, this.executor, this.isolationReport.isolation, this.id, this.logger)
    this.runner = runner
    await this.subscriber.subscribe(this.keys.cancelChannel)
    this.subscriber.on('message', (_channel: string, jobId: string) => runner.cancel(jobId))

    this.worker = new Worker<QueuedJobData>(QUEUE_NAME, async (job) => runner.run(job.data.jobId), {
      connection: this.bullConnection,
      prefix: this.keys.bullPrefix,
      concurrency: this.config.workerConcurrency,
      // A job whose lock lapses is handed out once more; JobRunner then records it as
      // lost rather than running it twice.
      maxStalledCount: 1,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
    })
    this.worker.on('error', (err) => this.logger.error({ err }, 'queue worker error'))
  }

  private async beat(): Promise<void> {
    const report = this.isolationReport
    if (!report) return
    const hb: WorkerHeartbeat = {
      id: this.id,
      executor: this.executor.name,
      isolation: { ok: report.ok, technology: report.technology, detail: report.detail, reason: report.reason },
      runtimes: this.versions,
      at: Date.now(),
    }
    await this.registry.beat(hb)
  }

  /**
   * Stops taking jobs and lets running ones finish for up to `graceMs`; past that, kills
   * their sandboxes (they end as `cancelled`, never silently lost).
   */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat)
    if (this.worker) {
      const closing = this.worker.close()
      const timer = setTimeout(() => this.runner?.abortAll(), graceMs)
      await closing
      clearTimeout(timer)
    }
    await this.registry.remove(this.id).catch(() => undefined)
    await this.executor.close()
    this.subscriber.disconnect()
    this.bullConnection.disconnect()
    this.redis.disconnect()
  }
}
