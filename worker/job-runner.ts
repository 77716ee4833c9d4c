import type { Logger } from 'pino'
import type { Isolation, JobOutcome } from '../core/job.js'
import type { JobStore, StoredJob } from '../core/job-store.js'
import type { Metrics } from '../core/metrics.js'
import { IsolationUnavailableError, LaunchRefusedError, type Executor } from './executors/executor.js'
import { executorFailureReason } from './executors/outcome.js'
import { LogBatcher, type LogMark } from './log-batcher.js'
import { publicText } from '../core/public-text.js'
import { findRuntime } from '../core/runtimes.js'
import type { JobSpec } from '../core/job-spec.js'
import { driverSpec, runsAsSteps, stepOutputBytes } from './steps/step-driver.js'
import { StepStreamParser } from './steps/step-report.js'
import { stepsOutcome } from './steps/step-outcome.js'
import { outcomeWithoutRun, REASONS } from '../core/job-lifecycle/reasons.js'
import { isRedisRefusingForNow, isRedisUnreachable } from '../core/redis.js'
import { now as clockNow } from '../core/clock.js'

/**
 * Abort reason when the worker stops: a job not launched yet goes back to the queue; one
 * whose program started ends as lost (never run twice). It is not cancelled.
 */
const SHUTDOWN = Symbol('shutdown')
/**
 * How long the host clean-up after a finished job waits. Its result is stored and
 * announced by then; the clean-up starts processes (runsc delete, umount), and each start
 * blocks this process's loop for milliseconds, which held up the job's answer when the
 * API shares the process (docs/benchmarks.md, start path).
 */
export const CLEANUP_DELAY_MS = 50

/** How often a job's end is tried before it is given up (~5 minutes, at most 10 s apart). */
const FINISH_ATTEMPTS = 35
const FINISH_RETRY_MAX_MS = 10_000
/** ... and once the worker is stopping past its grace (~4 s). */
const STOPPING_FINISH_ATTEMPTS = 5

/** What became of a delivered job: done (any final status or skipped), or handed back. */
export type RunResult = 'done' | 'handed-back' | 'throttled'

/**
 * Runs one queued job through the executor and records its one final status.
 * Decides what a second delivery of the same job means: BullMQ hands a job out
 * again when the worker holding it died, and by then the sandbox may have run.
 */
export class JobRunner {
  private readonly running = new Map<string, AbortController>()
  /** Clean-ups of finished jobs waiting for CLEANUP_DELAY_MS, by job: each starts once. */
  private readonly pendingCleanups = new Map<string, () => Promise<void>>()
  private flushed = false
  /** Past the grace period of a stop: its sandboxes are being killed, and a finish is tried for seconds only. */
  private stopping = false

  constructor(
    private readonly store: JobStore,
    private readonly executor: Executor,
    private readonly isolation: Isolation,
    private readonly workerId: string,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    /** Told when a launch found isolation gone; the worker then stops taking jobs. */
    private readonly onIsolationLost: (reason: string) => void = () => undefined,
  ) {}

  get active(): number {
    return this.running.size
  }

  /** Called for a cancel message; kills the sandbox if this worker runs the job. */
  cancel(jobId: string): void {
    this.running.get(jobId)?.abort()
  }

  /** Kills this worker's sandboxes (shutdown past the grace period): see SHUTDOWN for what becomes of their jobs. */
  interruptAll(): void {
    this.stopping = true
    for (const controller of this.running.values()) controller.abort(SHUTDOWN)
  }

  async run(jobId: string): Promise<RunResult> {
    const log = this.logger.child({ jobId })
    const claim = await this.store.claim(jobId, this.workerId)
    if (claim === 'running') {
      // Claimed before by a worker that stopped holding it: the program may have run.
      // At most once: follow its sandbox if it outlived that worker, else record the loss.
      if (this.running.has(jobId) || (this.executor.adopt && (await this.adopt(jobId, log)))) return 'done'
      await this.finishLost(jobId)
      log.warn('job was running on a worker that stopped; marked error')
      return 'done'
    }
    if (claim === 'throttled') return 'throttled'
    if (claim !== 'claimed') {
      log.info({ claim }, 'job not run')
      return 'done'
    }
    const controller = new AbortController()
    this.running.set(jobId, controller)
    this.metrics.activeSandboxes.inc()
    try {
      const stored = await this.store.get(jobId)
      if (!stored) return 'done'
      const labels = { runtime: stored.spec.runtime, tenant: this.metrics.tenant(stored.tenant) }
      this.metrics.jobsStarted.inc(labels)
      if (stored.job.timings.queuedMs !== null)
        this.metrics.queueWait.observe({ runtime: labels.runtime }, stored.job.timings.queuedMs / 1000)
      // A cancel published between the claim and the registration above is seen here.
      if (stored.cancelRequested) controller.abort()
      let outcome: JobOutcome
      let outputInEvents = false
      const launch = { counted: false }
      try {
        ;({ outcome, outputInEvents } = await this.execute(
          stored,
          controller.signal,
          log.child({ tenant: stored.tenant }),
          launch,
        ))
      } catch (err) {
        if (err instanceof LaunchRefusedError) {
          log.warn('job no longer running under this worker (ended as lost meanwhile); not launched')
          this.forgetSoon(jobId, log)
          return 'done'
        }
        if (!(err instanceof IsolationUnavailableError)) throw err
        // Not launched: back to the queue for when isolation is restored (fail closed).
        log.error({ reason: err.message }, 'isolation cannot be guaranteed; job not launched and handed back')
        this.onIsolationLost(err.message)
        if (await this.store.requeue(jobId, this.workerId)) return 'handed-back'
        outcome = outcomeWithoutRun('error', `isolation could not be guaranteed: ${publicText(err.message)}`)
      }

      if (
        controller.signal.aborted &&
        controller.signal.reason === SHUTDOWN &&
        !(await this.store.get(jobId))?.cancelRequested
      ) {
        // At most once: a program that started may have done part of its work, so it is
        // never started again; only a job that was not launched goes back to the queue.
        if (launch.counted) {
          // Killed by the stop (a program that ended on its own first keeps its result).
          if (outcome.status === 'cancelled') {
            outcome = { ...outcome, status: 'error', reason: REASONS.workerLost }
            log.warn('worker stopping: job killed after its launch; ended as error, not run again')
          }
        } else if (await this.store.requeue(jobId, this.workerId)) {
          log.warn('worker stopping: job not launched yet, handed back to the queue')
          return 'handed-back'
        }
      }
      const recorded = await this.finish(jobId, outcome, outputInEvents)
      this.forgetSoon(jobId, log)
      const summary = {
        tenant: stored.tenant,
        status: outcome.status,
        startupMs: outcome.startupMs,
        runMs: outcome.runMs,
      }
      if (recorded) {
        this.observeFinished(stored, outcome)
        log.info(summary, 'job finished')
      } else {
        // Ended by another meanwhile (taken for lost while this worker was frozen): that end stands.
        log.warn(summary, 'job had already ended elsewhere; this result is discarded')
      }
      return 'done'
    } finally {
      this.release(jobId, controller)
      this.metrics.activeSandboxes.dec()
    }
  }

  /** Drops a job's entry, if it is still this run's (never another's that came after it). */
  private release(jobId: string, controller: AbortController): void {
    if (this.running.get(jobId) === controller) this.running.delete(jobId)
  }

  /**
   * For a running job whose worker stopped (`fromWorker`): follows its sandbox if the
   * executor can, else ends it as lost. Never runs it again.
   */
  async adoptOrLose(jobId: string, fromWorker: string): Promise<void> {
    if (this.running.has(jobId)) return
    const log = this.logger.child({ jobId })
    if (this.executor.adopt && (await this.adopt(jobId, log, fromWorker))) return
    if (await this.store.markLost(jobId, fromWorker))
      log.warn({ worker: fromWorker }, 'job ended as error: its worker stopped')
  }

  /**
   * Follows a sandbox a stopped worker launched, or ends the job as lost once taken over
   * and there is none to follow; false when it could not be taken over (ended, or another's).
   */
  private async adopt(jobId: string, log: Logger, fromWorker = ''): Promise<boolean> {
    // Held from the first moment, before any wait: a second delivery of the job (`run`) and
    // the sweep (`adoptOrLose`) may both come for it at once, and each found it not held
    // here. Both took it over (the delivery's take-over names no worker) and both followed
    // its sandbox, and the first to end dropped the other's entry.
    if (this.running.has(jobId)) return true
    const controller = new AbortController()
    this.running.set(jobId, controller)
    try {
      const stored = await this.store.get(jobId)
      if (!stored || !(await this.store.takeOver(jobId, this.workerId, fromWorker))) return false
      if ((await this.store.get(jobId))?.cancelRequested) controller.abort()
      const plan = executionPlan(stored.spec)
      const ran = await this.executor.adopt!({
        jobId,
        tenant: stored.tenant,
        spec: plan.spec,
        signal: controller.signal,
      }).catch((err: unknown) => {
        log.warn({ err }, 'could not follow the sandbox of a worker that stopped')
        return null
      })
      if (!ran) {
        // Taken over, the job is this worker's now: its end is this worker's to record. Left
        // running, the sweep skipped it (a live worker's) and the stopped worker's loss was
        // no longer there to mark (found by a code review).
        await this.finishLost(jobId)
        log.warn('job was running on a worker that stopped and its sandbox could not be followed; marked error')
      } else {
        const outcome = plan.conclude(ran)
        log.warn({ status: outcome.status }, 'adopted the sandbox of a worker that stopped')
        // Its live log was the stopped worker's, maybe cut short: the outcome's output is kept.
        if (await this.finish(jobId, outcome, false)) this.observeFinished(stored, outcome)
      }
      // What the executor holds for it, followed or not (a Kubernetes Job found but not followed).
      this.forgetSoon(jobId, log)
      return true
    } finally {
      this.release(jobId, controller)
    }
  }

  private async forget(jobId: string, log: Logger): Promise<void> {
    await this.executor
      .forget?.(jobId)
      .catch((err: unknown) => log.warn({ err }, 'executor could not clean up after the job'))
  }

  /** Cleans up after a finished job CLEANUP_DELAY_MS later, without holding the worker's slot. */
  private forgetSoon(jobId: string, log: Logger): void {
    let started: Promise<void> | undefined
    let timer: NodeJS.Timeout | undefined
    // Kept until done, so a flush also waits for a clean-up already under way.
    const run = () => {
      clearTimeout(timer)
      started ??= this.forget(jobId, log).finally(() => {
        if (this.pendingCleanups.get(jobId) === run) this.pendingCleanups.delete(jobId)
      })
      return started
    }
    this.pendingCleanups.set(jobId, run)
    if (this.flushed) void run()
    else timer = setTimeout(run, CLEANUP_DELAY_MS)
  }

  /** Starts every clean-up still waiting, waits for them all, and starts later ones at once (the worker is stopping). */
  async flushCleanups(): Promise<void> {
    this.flushed = true
    await Promise.all([...this.pendingCleanups.values()].map((run) => run()))
  }

  /**
   * Runs the job; `outputInEvents` says its event stream holds exactly the outcome's
   * output, so the record need not keep a second copy.
   */
  private async execute(
    stored: StoredJob,
    signal: AbortSignal,
    log: Logger,
    launch: { counted: boolean },
  ): Promise<{ outcome: JobOutcome; outputInEvents: boolean }> {
    // Live output goes to the job's event stream, which is where the output is stored.
    // A failed write loses no output: the record then keeps the outcome's own copy.
    const streamed = { stdout: 0, stderr: 0, failed: false }
    const logs = new LogBatcher(
      async (piece) => {
        // Once a write is refused or lost the record keeps the output itself; the live log stops.
        if (streamed.failed) return
        if ('step' in piece) {
          await this.store.appendStep(stored.id, piece.step, piece.index)
          return
        }
        this.metrics.logBytesPublished.inc(Buffer.byteLength(piece.data))
        if ((await this.store.appendLog(stored.id, piece.stream, piece.data)) === 0) streamed.failed = true
        else streamed[piece.stream] += piece.data.length
      },
      (err) => {
        streamed.failed = true
        log.warn({ err }, 'could not publish output')
      },
    )
    let outcome: JobOutcome
    const plan = executionPlan(stored.spec)
    const live = plan.live(
      (stream, text) => logs.push(stream, text),
      (step) => logs.mark(step),
    )
    try {
      const ran = await this.executor.run({
        jobId: stored.id,
        tenant: stored.tenant,
        spec: plan.spec,
        signal,
        beforeLaunch: async () => {
          if ((await this.store.countLaunch(stored.id, this.workerId)) === 0) throw new LaunchRefusedError(stored.id)
          launch.counted = true
        },
        onOutput: live.onOutput,
      })
      live.end()
      outcome = plan.conclude(ran)
    } catch (err) {
      if (err instanceof IsolationUnavailableError || err instanceof LaunchRefusedError) {
        await logs.close()
        throw err
      }
      log.error({ err }, 'executor failed')
      outcome = outcomeWithoutRun('error', executorFailureReason(err))
    }
    // Every log event precedes the final status and the end event.
    await logs.close()
    const outputInEvents =
      !streamed.failed && streamed.stdout === outcome.stdout.length && streamed.stderr === outcome.stderr.length
    if (!outputInEvents)
      log.warn(
        { streamed, stdout: outcome.stdout.length, stderr: outcome.stderr.length },
        'live log differs from the outcome; the record keeps the output itself',
      )
    return { outcome, outputInEvents }
  }

  private observeFinished(stored: StoredJob, outcome: JobOutcome): void {
    const runtime = stored.spec.runtime
    this.metrics.jobsFinished.inc({ runtime, tenant: this.metrics.tenant(stored.tenant), status: outcome.status })
    this.metrics.endToEnd.observe(
      { runtime, status: outcome.status },
      (clockNow() - Date.parse(stored.job.createdAt)) / 1000,
    )
    if (outcome.startupMs !== null)
      this.metrics.sandboxStart.observe({ runtime, start: outcome.sandboxStart ?? 'cold' }, outcome.startupMs / 1000)
    if (outcome.runMs !== null) this.metrics.run.observe({ runtime, status: outcome.status }, outcome.runMs / 1000)
  }

  private async finishLost(jobId: string): Promise<void> {
    await this.finish(jobId, outcomeWithoutRun('error', REASONS.workerLost))
  }

  /**
   * Records the job's end, trying again while Redis refuses it (full: `OOM` under
   * noeviction; loading after a restart). Given up, the job would stay `running` under
   * this live worker, which no sweep takes for lost, for as long as its record lives.
   */
  private async finish(jobId: string, outcome: JobOutcome, outputInEvents = true): Promise<boolean> {
    const meta = { executor: this.executor.name, isolation: outcome.isolation ?? this.isolation, outputInEvents }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.finish(jobId, outcome, meta)
      } catch (err) {
        // Stopping, a few seconds only; then it is left to the sweep of the workers still
        // running (they end it as lost).
        const passing = isRedisRefusingForNow(err as Error) || isRedisUnreachable(err as Error)
        if (!passing || attempt >= (this.stopping ? STOPPING_FINISH_ATTEMPTS : FINISH_ATTEMPTS) - 1) throw err
        this.logger.warn({ jobId, err, attempt }, "the job's end could not be recorded; trying again")
        await new Promise((resolve) => setTimeout(resolve, Math.min(FINISH_RETRY_MAX_MS, 250 * 2 ** attempt)))
      }
    }
  }
}

type OnOutput = (stream: 'stdout' | 'stderr', text: string) => void

interface ExecutionPlan {
  /** What the executor runs. */
  spec: JobSpec
  /**
   * The live log: what of the sandbox's output is the job's, as it comes, and each step
   * as it starts; `end` once the sandbox's output has ended hands on what was held back.
   */
  live(onOutput: OnOutput, onStep: (step: LogMark) => void): { onOutput: OnOutput; end: () => void }
  /** The executor's outcome -> the job's. */
  conclude(ran: JobOutcome): JobOutcome
}

/**
 * How a job is run: as it is, or, when its runtime compiles or it has test cases, as
 * steps under the step driver (steps/), whose frames are read off the output: the
 * live log gets the runs' output only (the compiler's is kept apart), and the outcome
 * is made from the steps' reports.
 */
function executionPlan(spec: JobSpec): ExecutionPlan {
  const runtime = findRuntime(spec.runtime)
  if (!runtime || !runsAsSteps(spec, runtime))
    return { spec, live: (onOutput) => ({ onOutput, end: () => undefined }), conclude: (ran) => ran }
  return {
    spec: driverSpec(spec, runtime),
    live: (onOutput, onStep) => {
      const cap = (kind: Parameters<typeof stepOutputBytes>[1]) => stepOutputBytes(spec, kind)
      const forward = (stream: 'stdout' | 'stderr') =>
        new StepStreamParser(
          cap,
          {
            text: (step, text) => (step.kind !== 'compile' ? onOutput(stream, text) : undefined),
            // Both streams announce each step; stdout's announcement is the one recorded.
            start: stream === 'stdout' ? (step) => onStep({ step: step.kind, index: step.index }) : undefined,
          },
          false,
        )
      const parsers = { stdout: forward('stdout'), stderr: forward('stderr') }
      return {
        onOutput: (stream, text) => parsers[stream].push(text),
        end: () => {
          parsers.stdout.finish()
          parsers.stderr.finish()
        },
      }
    },
    conclude: (ran) => stepsOutcome(spec, runtime, ran),
  }
}
