import { chmod, mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import type { Logger } from 'pino'
import type { ArtifactFile } from '../../../core/artifacts.js'
import type { Isolation, JobOutcome } from '../../../core/job.js'
import { fileBytes, type JobSpec } from '../../../core/job-spec.js'
import type { Metrics } from '../../../core/metrics.js'
import { findRuntime, RUNTIMES, type RuntimeDefinition } from '../../../core/runtimes.js'
import {
  ExecutorError,
  IsolationUnavailableError,
  type ExecutionRequest,
  type Executor,
  type IsolationReport,
} from '../executor.js'
import { hostCgroups } from './cgroup-host.js'
import type { CgroupHost, HostLimits, SandboxCgroup } from './cgroups.js'
import { unmountUnder } from './mounts.js'
import { collectArtifacts, mountArtifactsDir } from './artifacts-dir.js'
import { ImageStore } from './images.js'
import { buildOciConfig, SANDBOX_UID } from './oci-bundle.js'
import { classifyEnd, localHostKill } from '../outcome.js'
import { CappedOutput, collect } from '../output-capture.js'
import { logTail, Runsc } from './runsc.js'
import { SANDBOX_SECCOMP_PROFILE_NAME } from '../sandbox-seccomp.js'
import { READ_SECCOMP_MODE, SECCOMP_MODE_FILTER, WARM_GO, warmJobFiles, warmLauncherArgv } from '../sandbox-process.js'
import { createWarmPool, type WarmPool, type WarmPoolSettings, type WarmSandbox } from '../warm-pool.js'
import { AUTO_PLATFORMS, type PlatformChoice, type RunscPlatform } from '../../../core/runsc-platforms.js'
import { outcomeWithoutRun, REASONS } from '../../../core/job-lifecycle/reasons.js'
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_TTL_MS } from '../../../core/worker-registry.js'

export interface LocalExecutorOptions {
  runscPath: string
  /** runc, for jobs that ask for the runc comparison runtime (benchmark tenants only). */
  runcPath: string
  /** A gVisor platform, or auto: the first of AUTO_PLATFORMS that works on this host. */
  platform: PlatformChoice
  network: 'none' | 'host'
  imagesDir: string
  stateDir: string
  cgroupParent: string
  sandboxOverheadMb: number
  workspaceMb: number
  /** Bytes of artifacts one job may leave in ARTIFACTS_DIR; 0: none come back (no directory is mounted). */
  artifactBytes?: number
  logger: Logger
  /** Where the host's cgroup hierarchy is mounted (tests point it elsewhere). */
  cgroupRoot?: string
  /**
   * Run sandboxes under the seccomp profile (sandbox-seccomp.ts). Only `airlock bench`
   * turns it off, to measure what it costs; it is not a setting.
   * @default true
   */
  seccomp?: boolean
  /** Sandboxes booted ahead of their jobs (warm-pool.ts); absent: every job starts cold. */
  warm?: WarmPoolSettings & {
    /**
     * What a warm sandbox is made for: a job with this memory and these CPUs (the
     * defaults) takes one; others start cold, since the sandbox shows its memory to the
     * program from its boot (MemTotal). Its process limit is the largest a job may have,
     * lowered to the job's at the claim.
     */
    limits: { memoryMb: number; cpus: number; pids: number }
  }
  metrics?: Metrics
  /**
   * Whose sandboxes these are: names its state directory and is part of each sandbox's
   * cgroup. By default the worker process's pid and a random tag: the tag sets apart
   * workers of one pid (every worker is pid 1 in its container, and containers on one
   * host may share its cgroups). reapOrphans takes an owner for dead once its lease
   * lapses (LEASE_FILE), or at once when its pid is gone where workers share a pid
   * namespace (one host's processes). Tests give two executors two owners, to stand for
   * two worker processes (an owner that does not begin with a pid is taken for a dead
   * worker's only by its lease).
   * @default `${process.pid}-<random tag>`
   */
  owner?: string
}

const CONTAINER_PREFIX = 'airlock-'
/** An owner's name as a worker process gives it (LocalExecutorOptions.owner): its pid first. */
const OWNER = /^(\d+)(?:-[0-9a-f]+)?$/
/**
 * A file in an owner's state directory whose time its executor renews while it lives. A
 * pid cannot tell a dead owner from a live one everywhere: a worker container restarted
 * with its state directory kept is pid 1 again (its predecessor's pid, alive), and across
 * containers sharing the directory a pid names nothing. An owner whose lease has not been
 * renewed for LEASE_TTL_MS is gone (or frozen: its jobs were ended as lost long before,
 * at the heartbeat's TTL, and its sandboxes ran on with no one to stop them).
 */
const LEASE_FILE = 'lease'
const LEASE_RENEW_MS = HEARTBEAT_INTERVAL_MS
const LEASE_TTL_MS = 4 * HEARTBEAT_TTL_MS
/**
 * And not renewed while this reaper watched it, for this long by its monotonic clock: a
 * host clock stepped forward made every live owner's lease look old until its next
 * renewal (code review).
 */
const LEASE_WATCHED_MS = 2 * LEASE_RENEW_MS
/** A bundle's artifacts directory (the host side of ARTIFACTS_DIR). */
const ARTIFACTS_SUBDIR = 'artifacts'
/**
 * The isolation probe: it runs, and its own process is under a seccomp filter (mode 2
 * in /proc/self/status) that only the bundle's profile can have put there.
 */
const PROBE_SCRIPT = `${READ_SECCOMP_MODE}; echo "ok seccomp=$s"`
// Output pipes close when the sandbox exits; this bounds the wait for their last bytes.
const DRAIN_GRACE_MS = 2000
const SANDBOX_CREATE_TIMEOUT_MS = 60_000
/** A finished sandbox is removed by then even if its result's storing never says so. */
const CLEANUP_LATEST_MS = 5000

/**
 * The sandbox's pids cgroup: a backstop for the sandbox's own host threads (gVisor's
 * Sentry, Gofer and the ptrace stubs); the job's own process limit is enforced inside
 * by RLIMIT_NPROC. A sandbox that reaches it is stopped by the host, not by its job.
 */
export function hostThreadLimit(pids: number): number {
  return pids * 4 + 256
}

/**
 * Runs each job in its own gVisor sandbox with runsc, on this machine. Each worker
 * process keeps its runsc state under its own directory (named by its pid), which
 * is how sandboxes left by a dead worker are told apart from a live one's.
 */
export class LocalExecutor implements Executor {
  readonly name = 'local'
  private readonly images: ImageStore
  private runsc: Runsc
  private readonly runc: Runsc
  private readonly ownDir: string
  /** Images found installed; a swap by build.sh replaces an image whole, so this stays true. */
  private readonly installed = new Set<string>()
  private runcIdentity: Promise<Isolation> | undefined
  private cgroupHost: Promise<CgroupHost | undefined> | undefined
  /** Platforms found working (true) or not (the reason) by the last full probe. */
  private platformsSeen = new Map<RunscPlatform, true | string>()
  private readonly pool: WarmPool<LocalWarmSandbox> | undefined
  private warmBoots = 0
  /** Jobs this executor is running now (warm or cold). */
  private inFlight = 0
  private readonly warmTag = randomBytes(4).toString('hex')
  /** Removals of finished sandboxes not yet done, by job: each starts its removal once (afterResult). */
  private readonly cleanups = new Map<string, () => Promise<void>>()

  /** Whose sandboxes these are (LocalExecutorOptions.owner). */
  readonly owner: string
  private leaseTimer: NodeJS.Timeout | undefined
  /** Other owners' leases as this reaper last saw them, and since when (performance.now()) unchanged. */
  private readonly leasesSeen = new Map<string, { mtimeMs: number; since: number }>()

  constructor(private readonly options: LocalExecutorOptions) {
    this.images = new ImageStore(options.imagesDir)
    this.owner = options.owner ?? `${process.pid}-${randomBytes(4).toString('hex')}`
    this.ownDir = join(options.stateDir, 'workers', this.owner)
    this.runsc = this.runscOn(options.platform === 'auto' ? 'systrap' : options.platform)
    this.runc = new Runsc({
      kind: 'runc',
      binary: options.runcPath,
      root: join(this.ownDir, 'runc'),
      platform: '',
      network: 'none',
    })
    this.pool = createWarmPool(options.warm, {
      boot: (runtime) => this.bootWarm(runtime),
      // Boots wait while jobs keep every core busy: at saturation a boot ahead saves a
      // job nothing (the CPU is the limit) and would slow the running ones.
      mayBoot: () => this.inFlight < availableParallelism(),
      logger: options.logger,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    })
  }

  private runscOn(platform: RunscPlatform): Runsc {
    return new Runsc({
      binary: this.options.runscPath,
      root: join(this.ownDir, 'runsc'),
      platform,
      network: this.options.network,
    })
  }

  /** The platform jobs run on: the configured one, or the one auto found working. */
  get platform(): RunscPlatform {
    return this.runsc.options.platform as RunscPlatform
  }

  private cgroups(): Promise<CgroupHost | undefined> {
    this.cgroupHost ??= hostCgroups(this.options.cgroupRoot)
    return this.cgroupHost
  }

  async checkIsolation(): Promise<IsolationReport> {
    const fail = (reason: string, detail = 'unavailable'): IsolationReport => ({
      ok: false,
      technology: 'gvisor',
      detail,
      reason,
      isolation: null,
    })
    // Bundles hold the jobs' sources, stdin and environment: for root alone on this host.
    // They were world-readable (review 18), and /run may be on disk.
    await mkdir(this.ownDir, { recursive: true, mode: 0o700 })
    await chmod(this.ownDir, 0o700)
    await this.renewLease()
    this.leaseTimer ??= setInterval(() => void this.renewLease(), LEASE_RENEW_MS).unref()
    let version: string
    try {
      version = await this.runsc.version()
    } catch (err) {
      return fail(`runsc cannot run (${this.options.runscPath}): ${(err as Error).message.split('\n')[0]}`)
    }
    const cgroups = await this.cgroups()
    const cgroupProblem = cgroups
      ? await cgroups.problem()
      : `no cgroup hierarchy (v1 or v2) is mounted at ${this.options.cgroupRoot ?? '/sys/fs/cgroup'}`
    if (cgroupProblem) return fail(cgroupProblem, `runsc ${version}`)
    const hierarchy = `cgroup ${cgroups!.version}`
    // Runtimes whose image is not installed here are not offered by this worker (they
    // are optional, e.g. ml-python); the probe's image must be.
    const probeImage = findRuntime('bash')?.localImage ?? 'default'
    const problem = await this.images.problem(probeImage)
    if (problem) return fail(problem, `runsc ${version}, ${hierarchy}`)
    // Only a real sandbox proves that runsc works here (platform, kernel, permissions).
    // The platform in use is probed each time; the others when there is no working
    // one yet, or it stopped working, so the report says which of them this host runs.
    const current = this.platformsSeen.get(this.platform) === true ? await this.probe(this.platform) : undefined
    if (current !== true) await this.probeAll()
    const working = [...this.platformsSeen].filter(([, seen]) => seen === true).map(([p]) => p)
    const chosen =
      this.options.platform === 'auto'
        ? AUTO_PLATFORMS.find((p) => this.platformsSeen.get(p) === true)
        : this.options.platform
    const detail = `runsc ${version}, platform ${chosen ?? this.platform}, ${hierarchy}; platforms that work here: ${working.join(', ') || 'none'}`
    if (chosen === undefined || this.platformsSeen.get(chosen) !== true) {
      await this.pool?.pause()
      const why = [...this.platformsSeen]
        .filter(([, seen]) => seen !== true)
        .map(([p, seen]) => `${p}: ${String(seen)}`)
        .join('; ')
      const hint =
        this.options.platform !== 'auto' && working.length > 0
          ? ` (set AIRLOCK_RUNSC_PLATFORM to ${working.join(' or ')}, or auto)`
          : ''
      return fail(
        `no gVisor platform ${this.options.platform === 'auto' ? `of ${AUTO_PLATFORMS.join(', ')} ` : `${this.options.platform} `}works on this host${hint}: ${why}`,
        detail,
      )
    }
    if (chosen !== this.platform) {
      // Either is gVisor; the change is still worth an operator's eye (systrap stopped working, say).
      if (current !== undefined)
        this.options.logger.warn(
          { from: this.platform, to: chosen, detail },
          'gVisor platform changed: the one in use stopped working here',
        )
      this.runsc = this.runscOn(chosen)
      // Sandboxes booted on the old platform are not what the report now says.
      await this.pool?.flush()
    }
    // Filled only once a probe sandbox proved this host isolates jobs.
    this.pool?.start()
    if (this.options.network !== 'none') {
      this.options.logger.warn(
        { network: this.options.network },
        'INSECURE: sandboxes share the host network (AIRLOCK_SANDBOX_NETWORK); use only to test airlock verify',
      )
    }
    return {
      ok: true,
      technology: 'gvisor',
      detail,
      reason: null,
      isolation: {
        technology: 'gvisor',
        runtime: 'runsc',
        version,
        platform: this.platform,
        network: this.options.network,
        readOnlyRoot: true,
        uid: SANDBOX_UID,
        capabilities: [],
        ...this.seccompRecord(),
      },
    }
  }

  async runtimeVersions(): Promise<Record<string, string>> {
    const versions: Record<string, string> = {}
    for (const runtime of RUNTIMES) {
      const manifest = await this.images.manifest(runtime.localImage)
      const v = manifest?.versions[runtime.name]
      if (v) versions[runtime.name] = v
    }
    return versions
  }

  /** Runs a probe sandbox on `platform`; true, or why it did not run. Remembered in platformsSeen. */
  private async probe(platform: RunscPlatform): Promise<true | string> {
    let seen: true | string
    try {
      const jobId = `probe_${process.pid}_${Date.now()}`
      const probe = await this.runWith(platform === this.platform ? this.runsc : this.runscOn(platform), {
        jobId,
        tenant: 'airlock-probe',
        spec: {
          runtime: 'bash',
          files: [{ path: 'main.sh', content: PROBE_SCRIPT }],
          entrypoint: 'main.sh',
          args: [],
          stdin: '',
          env: {},
          limits: { timeoutMs: 30_000, memoryMb: 64, cpus: 1, pids: 16, outputBytes: 1024 },
        },
        signal: new AbortController().signal,
      })
      await this.forget(jobId)
      const seccomp = /^ok seccomp=(\S*)$/.exec(probe.stdout.trim())?.[1]
      const wanted = this.options.seccomp === false ? '0' : SECCOMP_MODE_FILTER
      if (probe.status !== 'succeeded' || seccomp === undefined) {
        seen = `a probe sandbox did not run correctly (status ${probe.status}${probe.reason ? `: ${probe.reason}` : ''}; stderr: ${probe.stderr.slice(0, 300)})`
      } else {
        // Fail closed: a runsc that ignores --oci-seccomp (or the bundle's profile) runs no job.
        seen =
          seccomp === wanted
            ? true
            : `the sandbox's seccomp profile is not enforced inside it (the probe's /proc/self/status shows Seccomp: ${seccomp || 'nothing'}, not ${wanted}); this runsc does not apply --oci-seccomp`
      }
    } catch (err) {
      seen = `a probe sandbox failed: ${(err as Error).message}`
    }
    this.platformsSeen.set(platform, seen)
    return seen
  }

  private async probeAll(): Promise<void> {
    const configured = this.options.platform === 'auto' ? AUTO_PLATFORMS : [this.options.platform]
    for (const platform of new Set([...configured, ...AUTO_PLATFORMS])) await this.probe(platform)
  }

  run(request: ExecutionRequest): Promise<JobOutcome> {
    // The runc comparison runtime: the same bundle in a plain container (no gVisor), always cold.
    if (request.spec.isolation === 'runc') return this.runWith(this.runc, request)
    return this.runWith(this.runsc, request, this.pool)
  }

  private async runtimeOf(spec: JobSpec): Promise<RuntimeDefinition> {
    const runtime = findRuntime(spec.runtime)
    if (!runtime) throw new ExecutorError(`runtime ${spec.runtime} is not in this worker's catalog`)
    if (!this.installed.has(runtime.localImage)) {
      const missing = await this.images.problem(runtime.localImage)
      if (missing)
        throw new ExecutorError(
          `runtime ${spec.runtime} is not installed on this worker (${missing}); build it with sandbox-images/build.sh ${runtime.localImage}`,
        )
      this.installed.add(runtime.localImage)
    }
    return runtime
  }

  /** A warm sandbox from `pool` when it has one for the runtime, else a cold one. */
  private async runWith(
    runtimeCli: Runsc,
    request: ExecutionRequest,
    pool?: WarmPool<LocalWarmSandbox>,
  ): Promise<JobOutcome> {
    this.inFlight++
    try {
      return await this.runWithin(runtimeCli, request, pool)
    } finally {
      this.inFlight--
    }
  }

  private async runWithin(
    runtimeCli: Runsc,
    request: ExecutionRequest,
    pool?: WarmPool<LocalWarmSandbox>,
  ): Promise<JobOutcome> {
    const runtime = await this.runtimeOf(request.spec)
    const cgroups = await this.cgroups()
    if (!cgroups) throw new IsolationUnavailableError('no cgroup hierarchy is mounted: sandboxes cannot be limited')
    const warm = this.fitsWarm(request.spec) ? pool?.take(request.spec.runtime) : undefined
    if (warm) {
      const outcome = await this.runWarm(warm, runtime, request)
      if (outcome) return outcome
    }
    return this.runCold(runtimeCli, runtime, cgroups, request)
  }

  /** Whether a warm sandbox is the sandbox this job would have had cold: same memory and CPUs. */
  private fitsWarm(spec: JobSpec): boolean {
    const w = this.options.warm
    return !!w && spec.limits.memoryMb === w.limits.memoryMb && spec.limits.cpus === w.limits.cpus
  }

  private async runCold(
    runtimeCli: Runsc,
    runtime: RuntimeDefinition,
    cgroups: CgroupHost,
    request: ExecutionRequest,
  ): Promise<JobOutcome> {
    const { jobId, spec, signal } = request
    const comparison = spec.isolation === 'runc' ? await this.runcIsolation() : undefined
    const sandbox = this.coldSandbox(runtimeCli, cgroups, jobId)
    const t0 = Date.now()
    try {
      await this.writeBundle(sandbox.bundle, spec, runtime, sandbox.cgroup.path)
      await sandbox.cgroup.create(this.hostLimits(spec))
      if (signal.aborted) return outcomeWithoutRun('cancelled', REASONS.cancelledBeforeStart)
      const outcome = await this.launchCold(sandbox, request, t0)
      return { ...outcome, ...(comparison ? { isolation: comparison } : {}) }
    } finally {
      // Even after a throw: part of the bundle, the cgroup or the container may exist.
      this.afterResult(jobId, () => this.removeCold(sandbox))
    }
  }

  private coldSandbox(cli: Runsc, cgroups: CgroupHost, jobId: string): ColdSandbox {
    const id = `${CONTAINER_PREFIX}${jobId}`
    const bundle = join(this.ownDir, 'bundles', id)
    return {
      jobId,
      cli,
      id,
      bundle,
      logFile: join(bundle, 'runsc.log'),
      pidFile: join(bundle, 'sandbox.pid'),
      cgroup: cgroups.sandbox(this.cgroupPath(id)),
      created: false,
    }
  }

  /** Starts the cold sandbox and follows its program to its end. */
  private async launchCold(sandbox: ColdSandbox, request: ExecutionRequest, t0: number): Promise<JobOutcome> {
    const { spec, signal, onOutput, beforeLaunch } = request
    const { cli, id, logFile } = sandbox
    await beforeLaunch?.()
    const child = cli.run(id, sandbox.bundle, logFile, sandbox.pidFile)
    sandbox.created = true
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    const output = feed(child, spec.stdin, spec, onOutput)
    const up = Promise.race([
      waitForFile(sandbox.pidFile, SANDBOX_CREATE_TIMEOUT_MS).then(() => true),
      exited.then(() => false),
    ])
    const kill = () => void cli.kill(id, logFile)
    const run = await watch({ exited, kill, signal, timeoutMs: spec.limits.timeoutMs, up })
    const started = await this.coldStartedAt(sandbox, spec, run, output, t0)
    return {
      ...(await this.conclude(spec, sandbox.cgroup, run, output, join(sandbox.bundle, ARTIFACTS_SUBDIR))),
      startupMs: started - t0,
      runMs: run.endedAt - started,
      endedAt: run.endedAt,
      sandboxStart: 'cold',
      bootMs: started - t0,
    }
  }

  /** When the cold sandbox's program started; throws when the runtime could not start it. */
  private async coldStartedAt(
    sandbox: ColdSandbox,
    spec: JobSpec,
    run: Watched,
    output: JobOutput,
    t0: number,
  ): Promise<number> {
    // A program that ends within the pid-file poll (runc starts in milliseconds) did
    // start: its pid file is there.
    const pidStat = run.up ? undefined : await stat(sandbox.pidFile).catch(() => undefined)
    const sandboxStarted = run.up || (pidStat !== undefined && pidStat.size > 0)
    // Its start is when the runtime wrote the pid file, not when we saw the exit.
    const started =
      !run.up && pidStat ? Math.min(run.startedAt, Math.max(t0, Math.round(pidStat.mtimeMs))) : run.startedAt
    // A cancel that lands while runsc is still creating the sandbox kills runsc
    // itself; that is the cancel taking effect, not a failure to start.
    if (!sandboxStarted && run.code !== 0 && !run.cancelled) {
      const runtimeName = spec.isolation === 'runc' ? 'runc' : 'runsc'
      const why = (await logTail(sandbox.logFile)) || output.stderr.text().slice(0, 500)
      throw new ExecutorError(`${runtimeName} could not start the sandbox (exit ${run.code ?? run.sig}): ${why}`)
    }
    return started
  }

  private async removeCold(sandbox: ColdSandbox): Promise<void> {
    const { cli, id, logFile, cgroup, bundle, jobId } = sandbox
    if (sandbox.created) await cli.delete(id, logFile)
    await cgroup.remove().catch((err: unknown) => {
      this.options.logger.error({ err, jobId }, 'could not remove sandbox cgroup')
    })
    await unmountUnder(bundle)
    await rm(bundle, { recursive: true, force: true })
  }

  /**
   * Runs the job in a sandbox of the pool: its files, environment, argv and limits put
   * in place while the sandbox waits, then the go line. Undefined when the sandbox
   * could not take the job before anything of it ran (the job then starts cold).
   */
  private async runWarm(
    s: LocalWarmSandbox,
    runtime: RuntimeDefinition,
    request: ExecutionRequest,
  ): Promise<JobOutcome | undefined> {
    const { jobId, spec, signal, beforeLaunch } = request
    const t0 = Date.now()
    let handed = false
    try {
      if (!(await this.claimWarm(s, runtime, jobId, spec))) return undefined
      if (!s.alive()) return undefined
      if (signal.aborted) return outcomeWithoutRun('cancelled', REASONS.cancelledBeforeStart)
      handed = true
      await beforeLaunch?.()
      // A cancel during the launch record: the go line is not sent, nothing of the job runs.
      if (signal.aborted) return outcomeWithoutRun('cancelled', REASONS.cancelledBeforeStart)
      return await this.goWarm(s, request, t0)
    } finally {
      // Used or not, a claimed sandbox is never given back: it may hold the job's files.
      if (handed) this.afterResult(jobId, () => s.destroy())
      else await s.destroy()
    }
  }

  /** Puts the job's limits and files in the warm sandbox; false if it could not take them. */
  private async claimWarm(
    s: LocalWarmSandbox,
    runtime: RuntimeDefinition,
    jobId: string,
    spec: JobSpec,
  ): Promise<boolean> {
    try {
      // Claim-time limits, before anything of the job runs; beside the files, to save time.
      await Promise.all([s.cgroup.limit(this.hostLimits(spec)), writeFiles(s.jobDir, warmJobFiles(spec, runtime))])
      return true
    } catch (err) {
      const why = (err as Error).message
      this.options.logger.warn({ err: why, jobId }, 'a warm sandbox could not take its job; it starts cold')
      return false
    }
  }

  /** Sends the go line and follows the warm sandbox's program to its end. */
  private async goWarm(s: LocalWarmSandbox, request: ExecutionRequest, t0: number): Promise<JobOutcome> {
    const { spec, signal, onOutput } = request
    const output = feed(s.child, WARM_GO + spec.stdin, spec, onOutput)
    const kill = () => void this.runsc.kill(s.id, s.logFile)
    const up = Promise.resolve(true)
    const run = await watch({ exited: s.exited, kill, signal, timeoutMs: spec.limits.timeoutMs, up })
    return {
      ...(await this.conclude(spec, s.cgroup, run, output, s.artifactsDir)),
      startupMs: run.startedAt - t0,
      runMs: run.endedAt - run.startedAt,
      endedAt: run.endedAt,
      sandboxStart: 'warm',
      bootMs: s.bootMs,
    }
  }

  /** Memory, host threads and CPU of the job's sandbox cgroup. */
  private hostLimits(spec: JobSpec): HostLimits {
    return {
      memoryBytes: (spec.limits.memoryMb + this.options.sandboxOverheadMb) * 1024 * 1024,
      pids: hostThreadLimit(spec.limits.pids),
      cpus: spec.limits.cpus,
    }
  }

  /** The end of a program that ran: its last output, what its cgroup saw, and how it ended. */
  private async conclude(
    spec: JobSpec,
    cgroup: SandboxCgroup,
    run: Watched,
    { stdout, stderr, drained }: JobOutput,
    artifactsDir: string,
  ): Promise<Omit<JobOutcome, 'startupMs' | 'runMs'>> {
    await Promise.race([drained, sleep(DRAIN_GRACE_MS)])
    const artifacts = await this.artifactsOf(artifactsDir)
    const runtimeSignal = run.code === null ? run.sig : null
    const oomKills = await cgroup.oomKills()
    const hostKill = localHostKill({
      threadRefusals: await cgroup.threadRefusals(),
      threadLimit: hostThreadLimit(spec.limits.pids),
      runtimeSignal,
    })
    const end = classifyEnd({
      exitStatus: run.code,
      timedOut: run.timedOut,
      cancelled: run.cancelled,
      oomKills,
      hostKill,
      timeoutMs: spec.limits.timeoutMs,
      memoryMb: spec.limits.memoryMb,
    })
    return {
      ...end,
      stdout: stdout.text(),
      stderr: stderr.text(),
      truncated: stdout.truncated || stderr.truncated,
      ...(artifacts ? { artifacts } : {}),
    }
  }

  /** The files a job left, once its program has ended; none when artifacts are off. */
  private async artifactsOf(dir: string): Promise<ArtifactFile[] | undefined> {
    if (!this.options.artifactBytes) return undefined
    const { files, skipped } = await collectArtifacts(dir, this.options.artifactBytes)
    // The names are the program's: ten of them, each cut short (ten names of 3 KB each
    // were a 12 KB log line per job; review 18).
    if (skipped.length > 0)
      this.options.logger.info(
        {
          skipped: skipped
            .slice(0, 10)
            .map((name) => (name.length > 100 ? `${[...name].slice(0, 100).join('')}…` : name)),
          count: skipped.length,
        },
        'artifacts that are not regular files with UTF-8 names, or too large, were left behind',
      )
    return files
  }

  /**
   * Removal of a finished sandbox, started once its result is stored (forget) rather
   * than in front of it, and so not competing with the result's write for the CPU; or
   * after CLEANUP_LATEST_MS if nobody says so. close() runs any still waiting.
   */
  private afterResult(jobId: string, cleanup: () => Promise<void>): void {
    let started: Promise<void> | undefined
    const start = () =>
      (started ??= cleanup()
        .catch((err: unknown) => this.options.logger.error({ err, jobId }, 'could not remove a finished sandbox'))
        .finally(() => {
          clearTimeout(timer)
          this.cleanups.delete(jobId)
        }))
    const timer = setTimeout(start, CLEANUP_LATEST_MS)
    timer.unref()
    this.cleanups.set(jobId, start)
  }

  async forget(jobId: string): Promise<void> {
    await this.cleanups.get(jobId)?.()
    // The pool refills once the job is over, not while it starts or runs beside it.
    this.pool?.refill()
  }

  /** Boots a sandbox for the pool: the runtime's image, waiting for one job (warmLauncherArgv). */
  private async bootWarm(runtimeName: string): Promise<LocalWarmSandbox> {
    const runtime = findRuntime(runtimeName)!
    const problem = await this.images.problem(runtime.localImage)
    if (problem) throw new ExecutorError(`runtime ${runtimeName} is not installed on this worker (${problem})`)
    const cgroups = await this.cgroups()
    if (!cgroups) throw new IsolationUnavailableError('no cgroup hierarchy is mounted: sandboxes cannot be limited')
    // Unique beyond this executor: a process may hold several (airlock bench does).
    const id = `${CONTAINER_PREFIX}warm-${this.warmTag}-${this.warmBoots++}`
    const bundle = join(this.ownDir, 'bundles', id)
    const jobDir = join(bundle, 'job')
    const cgroup = cgroups.sandbox(this.cgroupPath(id))
    const runsc = this.runsc
    const logFile = join(bundle, 'runsc.log')
    let child: ChildProcessWithoutNullStreams | undefined
    const destroy = async () => {
      child?.stdin.destroy()
      if (child) await runsc.delete(id, logFile)
      await cgroup
        .remove()
        .catch((err: unknown) => this.options.logger.error({ err, id }, 'could not remove a warm sandbox cgroup'))
      await unmountUnder(bundle)
      await rm(bundle, { recursive: true, force: true })
    }
    const t0 = Date.now()
    try {
      // A job with the pool's memory and CPUs takes it; the claim lowers the process limit.
      const bootSpec: JobSpec = {
        runtime: runtimeName,
        files: [],
        entrypoint: runtime.defaultEntrypoint,
        args: [],
        stdin: '',
        env: {},
        limits: { ...this.options.warm!.limits, timeoutMs: 1000, outputBytes: 1 },
      }
      await this.writeBundle(bundle, bootSpec, runtime, cgroup.path, { jobDir, argv: warmLauncherArgv() })
      await cgroup.create({ ...this.hostLimits(bootSpec), background: true })
      const pidFile = join(bundle, 'sandbox.pid')
      child = runsc.run(id, bundle, logFile, pidFile)
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
      let exitedYet = false
      void exited.then(() => {
        exitedYet = true
      })
      const up = await Promise.race([
        waitForFile(pidFile, SANDBOX_CREATE_TIMEOUT_MS).then(() => true),
        exited.then(() => false),
      ])
      if (!up) throw new ExecutorError(`runsc could not boot a warm sandbox: ${await logTail(logFile)}`)
      const booted = child
      return {
        id,
        runtime: runtimeName,
        bootedAt: performance.now(),
        bootMs: Date.now() - t0,
        child: booted,
        exited,
        jobDir,
        artifactsDir: join(bundle, ARTIFACTS_SUBDIR),
        logFile,
        cgroup,
        alive: () => !exitedYet,
        memoryBytes: () => cgroup.memoryBytes(),
        destroy,
      }
    } catch (err) {
      await destroy()
      throw err
    }
  }

  /**
   * What a runc job gets: a container, not a sandbox. Recorded in the job so it is never
   * mistaken for one. runc's version is asked once; a failed ask is asked again next time.
   */
  private runcIsolation(): Promise<Isolation> {
    this.runcIdentity ??= this.runc.version().then(
      (version): Isolation => ({
        technology: 'none',
        runtime: 'runc',
        version,
        platform: 'native',
        network: 'none',
        readOnlyRoot: true,
        uid: SANDBOX_UID,
        capabilities: [],
        ...this.seccompRecord(),
      }),
      (err: unknown) => {
        this.runcIdentity = undefined
        throw new ExecutorError(`runc cannot run (${this.options.runcPath}): ${(err as Error).message.split('\n')[0]}`)
      },
    )
    return this.runcIdentity
  }

  /** The profile the bundle carries, for the job's record (runc applies it too). */
  private seccompRecord(): Pick<Isolation, 'seccomp'> {
    return this.options.seccomp === false ? {} : { seccomp: SANDBOX_SECCOMP_PROFILE_NAME }
  }

  /** `warm`: the bundle of a pool sandbox, its job's directory (mounted empty) and the launcher's argv. */
  private async writeBundle(
    bundle: string,
    spec: JobSpec,
    runtime: RuntimeDefinition,
    cgroupsPath: string,
    warm?: { jobDir: string; argv: string[] },
  ): Promise<void> {
    const filesDir = warm?.jobDir ?? join(bundle, 'files')
    // Made anew 0700 if it went (a worker frozen past its lease wakes with its state reaped):
    // the bundle's own directories below would make it 0755.
    await mkdir(this.ownDir, { recursive: true, mode: 0o700 })
    await mkdir(filesDir, { recursive: true, mode: 0o755 })
    await writeFiles(
      filesDir,
      spec.files.map((f) => ({ path: f.path, content: fileBytes(f) })),
    )
    const artifactsPath = join(bundle, ARTIFACTS_SUBDIR)
    if (this.options.artifactBytes) await mountArtifactsDir(artifactsPath, this.options.artifactBytes)
    const config = buildOciConfig({
      spec,
      runtime,
      rootfsPath: this.images.rootfs(runtime.localImage),
      jobFilesPath: filesDir,
      cgroupsPath,
      workspaceMb: this.options.workspaceMb,
      network: this.options.network,
      seccomp: this.options.seccomp !== false,
      ...(warm ? { argv: warm.argv } : {}),
      ...(this.options.artifactBytes ? { artifactsPath } : {}),
    })
    await writeFile(join(bundle, 'config.json'), JSON.stringify(config))
  }

  /**
   * A sandbox's cgroup: named for its owner too. A job's sandbox is named for the job on
   * every worker, and a job handed back by a stopping worker may be prepared by another at
   * once: the stopping worker's clean-up removed (and killed) the other's cgroup.
   */
  private cgroupPath(id: string, owner = this.owner): string {
    return `/${this.options.cgroupParent}/${id}.${owner}`
  }

  /** Renews this owner's lease (LEASE_FILE); a directory already removed (close) is left so. */
  private async renewLease(): Promise<void> {
    const lease = join(this.ownDir, LEASE_FILE)
    const now = new Date()
    await utimes(lease, now, now).catch(() => writeFile(lease, '', { flag: 'wx' }).catch(() => undefined))
  }

  /** Whether another owner's directory is a dead (or frozen) worker's: its lease has lapsed, or its pid is gone. */
  private async ownerGone(workersDir: string, owner: string): Promise<boolean> {
    if (owner === this.owner) return false
    const lease = await stat(join(workersDir, owner, LEASE_FILE)).catch(() => undefined)
    if (lease) {
      const seen = this.leasesSeen.get(owner)
      if (seen?.mtimeMs !== lease.mtimeMs)
        this.leasesSeen.set(owner, { mtimeMs: lease.mtimeMs, since: performance.now() })
      else if (Date.now() - lease.mtimeMs > LEASE_TTL_MS && performance.now() - seen.since > LEASE_WATCHED_MS)
        return true
    }
    // `<pid>-<tag>`, or `<pid>` as releases before the tag named it; another owner of this
    // process's pid is another executor of it, or a lapsed one (above).
    const pid = Number(OWNER.exec(owner)?.[1])
    return Number.isInteger(pid) && pid !== process.pid && !isAlive(pid)
  }

  /**
   * Removes sandboxes, cgroups and bundles of worker processes that no longer exist.
   * Runs at worker start, before it takes jobs, and at every heartbeat after.
   */
  async reapOrphans(): Promise<number> {
    const workersDir = join(this.options.stateDir, 'workers')
    const owners = await readdir(workersDir).catch(() => [] as string[])
    for (const owner of this.leasesSeen.keys()) if (!owners.includes(owner)) this.leasesSeen.delete(owner)
    const cgroups = await this.cgroups()
    let reaped = 0
    for (const owner of owners) {
      if (!(await this.ownerGone(workersDir, owner))) continue
      const runsc = new Runsc({ ...this.runsc.options, root: join(workersDir, owner, 'runsc') })
      const runc = new Runsc({ ...this.runc.options, root: join(workersDir, owner, 'runc') })
      // Sandboxes runsc knows of, and bundles of launches it may not have got to: the
      // cgroups exist from the moment the bundle does.
      const bundles = await readdir(join(workersDir, owner, 'bundles')).catch(() => [] as string[])
      const ids = new Set([...(await runsc.list()), ...bundles].filter((id) => id.startsWith(CONTAINER_PREFIX)))
      for (const id of ids) {
        await runsc.delete(id)
        await runc.delete(id)
        await cgroups
          ?.sandbox(this.cgroupPath(id, owner))
          .remove()
          .catch(() => undefined)
        reaped++
      }
      await unmountUnder(join(workersDir, owner))
      await rm(join(workersDir, owner), { recursive: true, force: true })
    }
    return reaped
  }

  async close(): Promise<void> {
    clearInterval(this.leaseTimer)
    await this.pool?.close()
    await Promise.all([...this.cleanups.values()].map((start) => start()))
    await unmountUnder(this.ownDir)
    await rm(this.ownDir, { recursive: true, force: true })
  }
}

/** A sandbox of the pool, with what the executor needs to hand it a job and watch it. */
interface LocalWarmSandbox extends WarmSandbox {
  readonly id: string
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>
  /** Host directory mounted read-only at JOB_FILES_MOUNT; empty until the claim. */
  readonly jobDir: string
  /** Host side of its ARTIFACTS_DIR. */
  readonly artifactsDir: string
  readonly logFile: string
  readonly cgroup: SandboxCgroup
}

/** A cold sandbox of one job: where its bundle is, and whether its runtime was started on it. */
interface ColdSandbox {
  readonly jobId: string
  readonly cli: Runsc
  readonly id: string
  readonly bundle: string
  readonly logFile: string
  readonly pidFile: string
  readonly cgroup: SandboxCgroup
  /** From the runtime's start on there is a container to delete, whatever came of it. */
  created: boolean
}

interface Watched {
  code: number | null
  sig: NodeJS.Signals | null
  timedOut: boolean
  cancelled: boolean
  /** The sandbox came up (false: it exited before it did). */
  up: boolean
  startedAt: number
  endedAt: number
}

/**
 * Watches a launched sandbox to its exit: a cancel kills it from now on, and the time
 * limit counts from when it is `up`, so a busy host does not eat into it.
 */
async function watch(p: {
  exited: Promise<[number | null, NodeJS.Signals | null]>
  kill: () => void
  signal: AbortSignal
  timeoutMs: number
  up: Promise<boolean>
}): Promise<Watched> {
  let timedOut = false
  let cancelled = false
  const onAbort = () => {
    cancelled = true
    p.kill()
  }
  p.signal.addEventListener('abort', onAbort, { once: true })
  // A cancel that came before the watch (while the job was being launched) is one too.
  if (p.signal.aborted) onAbort()
  let timer: NodeJS.Timeout | undefined
  try {
    const up = await p.up
    const startedAt = Date.now()
    if (up) {
      timer = setTimeout(() => {
        timedOut = true
        p.kill()
      }, p.timeoutMs)
      if (p.signal.aborted) p.kill()
    }
    const [code, sig] = await p.exited
    return { code, sig, timedOut, cancelled, up, startedAt, endedAt: Date.now() }
  } finally {
    clearTimeout(timer)
    p.signal.removeEventListener('abort', onAbort)
  }
}

/** Writes files under `dir`, at once. Paths were checked at the edge (relative, no '..'): join cannot leave `dir`. */
async function writeFiles(dir: string, files: readonly { path: string; content: string | Buffer }[]): Promise<void> {
  const dirs = new Set(files.map((f) => dirname(join(dir, f.path))))
  await Promise.all([...dirs].map((d) => mkdir(d, { recursive: true, mode: 0o755 })))
  await Promise.all(files.map((f) => writeFile(join(dir, f.path), f.content, { mode: 0o644 })))
}

/** The program's output pipes being read into the job's caps. */
interface JobOutput {
  readonly stdout: CappedOutput
  readonly stderr: CappedOutput
  /** Resolves once both pipes have closed. */
  readonly drained: Promise<unknown>
}

/** Reads the program's output into the job's caps (and the live log) from now on, and writes `input` to its stdin. */
function feed(
  child: ChildProcessWithoutNullStreams,
  input: string,
  spec: JobSpec,
  onOutput: ExecutionRequest['onOutput'],
): JobOutput {
  const stdout = new CappedOutput(spec.outputTextBytes ?? spec.limits.outputBytes)
  const stderr = new CappedOutput(spec.outputTextBytes ?? spec.limits.outputBytes)
  const drained = drain(child, stdout, stderr, onOutput)
  child.stdin.on('error', () => undefined) // the program may exit without reading stdin
  child.stdin.end(input)
  return { stdout, stderr, drained }
}

/** Reads both output pipes into their caps (and the live log) until they close. */
function drain(
  child: ChildProcessWithoutNullStreams,
  stdout: CappedOutput,
  stderr: CappedOutput,
  onOutput: ExecutionRequest['onOutput'],
): Promise<unknown> {
  return Promise.all([
    collect(child.stdout, stdout, onOutput && ((text) => onOutput('stdout', text))),
    collect(child.stderr, stderr, onOutput && ((text) => onOutput('stderr', text))),
  ])
}

/** Resolves once `path` exists and is non-empty; rejects after `timeoutMs`. */
async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const size = await stat(path).then(
      (s) => s.size,
      () => 0,
    )
    if (size > 0) return
    if (performance.now() > deadline) throw new ExecutorError(`the sandbox was not created within ${timeoutMs} ms`)
    await sleep(5)
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
