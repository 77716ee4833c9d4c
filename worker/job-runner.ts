import type { Logger } from 'pino'
import type { Isolation, JobOutcome } from '../core/job.js'
import type { JobStore } from '../core/job-store.js'
import type { Executor } from './executors/executor.js'
import { LogBatcher } from './log-batcher.js'

/**
 * Runs one queued job through the executor and records its one final status.
 * Decides what a second delivery of the same job means: BullMQ hands a job out
 * again when the worker holding it died, and by then the sandbox may have run.
 */
export class JobRunner {
  private readonly running = new Map<string, AbortController>()

  constructor(
    private readonly store: JobStore,
    private readonly executor: Executor,
    private readonly isolation: Isolation,
    private readonly workerId: string,
    private readonly logger: Logger,
  ) {}

  get active(): number {
    return this.running.size
  }

  /** Called for a cancel message; kills the sandbox if this worker runs the job. */
  cancel(jobId: string): void {
    this.running.get(jobId)?.abort()
  }

  /** Kills every sandbox of this worker (shutdown past its grace period). */
  abortAll(): void {
    for (const controller of this.running.values()) controller.abort()
  }

  async run(jobId: string): Promise<void> {
    const log = this.logger.child({ jobId })
    const claim = await this.store.claim(jobId, this.workerId)
    if (claim === 'running') {
      // Claimed before by a worker that stopped holding it: the program may have run.
      // At most once: record the loss instead of running it again.
      await this.finish(jobId, errorOutcome('the worker running this job stopped before it finished; it was not run again'))
      log.warn('job was running on a worker that stopped; marked error')
      return
    }
    if (claim !== 'claimed') {
      log.info({ claim }, 'job not run')
      return
    }
    const controller = new AbortController()
    this.running.set(jobId, controller)
    try {
      const stored = await this.store.get(jobId)
      if (!stored) return
      // A cancel published between the claim and the registration above is seen here.
      if (stored.cancelRequested) controller.abort()
      // Live output goes to the job's event stream; a failed write loses only live
      // output, never the stored result.
      const logs = new LogBatcher(
        (piece) => this.store.appendLog(jobId, piece.stream, piece.data),
        (err) => log.warn({ err }, 'could not publish output'),
      )
      let outcome: JobOutcome
      try {
        outcome = await this.executor.run({ jobId, spec: stored.spec, signal: controller.signal, onOutput: (stream, text) => logs.push(stream, text) })
      } catch (err) {
        log.error({ err }, 'executor failed')
        outcome = errorOutcome(`the sandbox could not be run: ${(err as Error).message}`)
      }
      // Every log event precedes the final status and the end event.
      await logs.close()
      await this.finish(jobId, outcome)
      log.info({ status: outcome.status, startupMs: outcome.startupMs, runMs: outcome.runMs }, 'job finished')
    } finally {
      this.running.delete(jobId)
    }
  }

  private async finish(jobId: string, outcome: JobOutcome): Promise<void> {
    await this.store.finish(jobId, outcome, { executor: this.executor.name, isolation: this.isolation })
  }
}

function errorOutcome(reason: string): JobOutcome {
  return { status: 'error', exitCode: null, signal: null, reason, stdout: '', stderr: '', truncated: false, startupMs: null, runMs: null }
}
