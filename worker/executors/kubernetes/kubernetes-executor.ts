import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { PassThrough } from 'node:stream'
import {
  ApiException,
  Attach,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  NetworkingV1Api,
  NodeV1Api,
  PatchStrategy,
  setHeaderOptions,
  VersionApi,
  type CoreV1Event,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node'
import type { Logger } from 'pino'
import type { Isolation, JobOutcome } from '../../../core/job.js'
import type { JobSpec, Limits } from '../../../core/job-spec.js'
import type { Metrics } from '../../../core/metrics.js'
import { findRuntime, RUNTIMES } from '../../../core/runtimes.js'
import {
  ExecutorError,
  IsolationUnavailableError,
  type ExecutionRequest,
  type Executor,
  type IsolationReport,
} from '../executor.js'
import { SANDBOX_UID, WARM_GO, warmJobStream } from '../sandbox-process.js'
import { createWarmPool, type WarmPool, type WarmPoolSettings, type WarmSandbox } from '../warm-pool.js'
import {
  ANNOTATION_CLAIMED_AT,
  ANNOTATION_HANDED_AT,
  ANNOTATION_TENANT,
  buildJob,
  buildSecret,
  buildWarmJob,
  CONTAINER_NAME,
  jobLabels,
  kubeJobName,
  LABEL_CLAIMED_BY,
  LABEL_JOB,
  LABEL_TENANT,
  LABEL_WARM,
  MAX_SECRET_BYTES,
  secretBytes,
  tenantLabel,
  type ManifestInput,
} from './job-manifests.js'
import { classifyEnd, SIGNAL_EXIT_BASE } from '../outcome.js'
import { ContainerOutput, type ExitReport } from './container-output.js'
import { namespaceProblems } from './namespace-safety.js'
import { isTransientRefusal, observe, type Observation } from './pod-state.js'
import { ResumableWatch, type WatchEventType } from './resumable-watch.js'
import { SANDBOX_SECCOMP_PROFILE_NAME } from '../sandbox-seccomp.js'
import { outcomeWithoutRun, REASONS } from '../../../core/job-lifecycle/reasons.js'
import { now as clockNow } from '../../../core/clock.js'

export interface KubernetesExecutorOptions {
  /** A kubeconfig file; empty for the in-cluster service account. */
  kubeconfig: string
  namespace: string
  runtimeClassName: string
  /** Sandbox image name -> reference pinned by digest. */
  images: Map<string, string>
  workspaceMb: number
  unschedulableWaitMs: number
  startAllowanceMs: number
  ttlAfterFinishedSeconds: number
  watchTimeoutSeconds: number
  /**
   * auto: stdout and stderr apart where the cluster allows choosing a log stream; merged: always one log, as stdout.
   */
  logStreams: 'auto' | 'merged'
  /**
   * attach: a cold pod's launcher waits for the worker's go line through an attach,
   * which then carries the program's output and the launcher's report straight from
   * the container runtime; log (the default here): the program starts at once and its
   * output comes from the log endpoint once the kubelet's status shows the container.
   */
  handOver?: 'attach' | 'log'
  logger: Logger
  /**
   * Warm pods: Jobs whose pods are booted before their jobs arrive and wait on stdin;
   * absent: every job gets a Job of its own. A job takes one only when its memory and
   * CPUs are the pods' `limits` and its output cap is no larger: a pod's resources are
   * fixed when it is created.
   */
  warm?: WarmPoolSettings & { limits: Limits }
  metrics?: Metrics
}

/** A warm Job, booted and waiting for one job. */
interface WarmPod extends WarmSandbox {
  /** The Kubernetes Job's name. */
  readonly name: string
  readonly podName: string
  readonly createdAt: number
}

/** Which Kubernetes Job runs a job: its own, or a warm one it was handed to. */
interface KubeTarget {
  name: string
  /** When a warm pod was handed the job (its program's start); absent for a Job of its own. */
  warmSince?: number
  bootMs?: number
  /** Resolves with why, if the attach that carried the job failed while it was being sent. */
  handOverFailed?: Promise<string>
  /** A warm Job claimed for the job by a worker that stopped before it was known to hold the job. */
  notHandedOver?: boolean
  /** This worker created the Job just now: a launcher waiting for go has run nothing yet. */
  fresh?: boolean
}

type AttachSocket = Awaited<ReturnType<Attach['attach']>>

/**
 * Watches an attach: `failed` resolves with the API server's message when its status
 * channel (3) reports a failure or it closes, until `done` (every byte of the job was
 * handed to the socket; what comes after, the program's own end included, is not the
 * hand-over's).
 */
function attachFailure(ws: AttachSocket): { failed: Promise<string>; done: () => void } {
  let over = false
  let fail!: (why: string) => void
  const failed = new Promise<string>((resolve) => (fail = resolve))
  ws.on('message', (data: Buffer | string) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data)
    // The server opens each channel with an empty message; only a status with content says anything.
    if (over || buf[0] !== 3 || buf.length <= 1) return
    const status = tryJson(buf.subarray(1).toString()) as { status?: string; message?: string } | undefined
    if (status?.status !== 'Success') fail(status?.message ?? buf.subarray(1).toString().slice(0, 300))
  })
  ws.on('close', () => {
    if (!over) fail('the attach closed before the job was sent')
  })
  return { failed, done: () => void (over = true) }
}

// The namespace's safety is checked before launches, at most this often.
const SAFETY_CACHE_MS = 5000
// After the container ended, how long its log may take to reach its end.
const DRAIN_GRACE_MS = 5000
/** How long the attach to a warm pod may take to open before the job goes to a Job of its own. */
const ATTACH_TIMEOUT_MS = 5000
/** How long an open attach is given to report that it reaches no container, before the job is written. */
const ATTACH_SETTLE_MS = 100
/**
 * The first wait between attempts to attach to a cold pod whose container is not running yet; doubled up to the next.
 */
const HAND_OVER_RETRY_MS = 50
const HAND_OVER_RETRY_MAX_MS = 500
/** The least time a cold pod is given to take its go line, however small the start allowance. */
const HAND_OVER_MIN_MS = 30_000
/** How often a Job that has no pod yet is checked for a refused one. */
const REFUSAL_CHECK_MS = 1000

function eventTime(e: CoreV1Event): number {
  return new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? 0).getTime()
}

function status(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined
}

async function orNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p
  } catch (err) {
    if (status(err) === 404) return undefined
    throw err
  }
}

/**
 * Runs each job as a Kubernetes Job under the gVisor RuntimeClass. It refuses to
 * launch (fail closed) unless the namespace enforces Pod Security `restricted`, a
 * NetworkPolicy denies all traffic to and from sandbox pods, and the RuntimeClass
 * exists. It watches the Job and its pod rather than polling, and follows the
 * container's log into the job's live output.
 */
export class KubernetesExecutor implements Executor {
  readonly name = 'kubernetes'
  private readonly kc = new KubeConfig()
  private readonly core: CoreV1Api
  private readonly batch: BatchV1Api
  private readonly networking: NetworkingV1Api
  private readonly node: NodeV1Api
  private safeUntil = 0
  /** The API server's version, as last seen by checkIsolation. */
  private kubeVersion = 'unknown'
  /** Whether the API server lets a log request choose stdout or stderr, as last seen by checkIsolation. */
  private splitStreams = false
  /** Watch requests that ended and were resumed; a measure of how often watches break. */
  watchResumes = 0
  private readonly pool: WarmPool<WarmPod> | undefined
  private readonly warmTag = randomBytes(4).toString('hex')
  private warmBoots = 0
  /** Job id -> the Kubernetes Job running it, where that is a warm one. */
  private readonly warmJobs = new Map<string, string>()

  constructor(private readonly options: KubernetesExecutorOptions) {
    if (options.kubeconfig) this.kc.loadFromFile(options.kubeconfig)
    else this.kc.loadFromCluster()
    this.core = this.kc.makeApiClient(CoreV1Api)
    this.batch = this.kc.makeApiClient(BatchV1Api)
    this.networking = this.kc.makeApiClient(NetworkingV1Api)
    this.node = this.kc.makeApiClient(NodeV1Api)
    // The pods' memory requests are what the pool's memory budget counts.
    this.pool = createWarmPool(options.warm, {
      boot: (runtime) => this.bootWarmPod(runtime),
      logger: options.logger,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    })
  }

  /** What is missing for sandboxes to be safe in the namespace; empty when nothing is. */
  async safetyProblems(): Promise<string[]> {
    const { namespace, runtimeClassName } = this.options
    const [ns, runtimeClass, policies] = await Promise.all([
      orNotFound(this.core.readNamespace({ name: namespace })),
      orNotFound(this.node.readRuntimeClass({ name: runtimeClassName })),
      this.networking.listNamespacedNetworkPolicy({ namespace }).then(
        (l) => l.items,
        (err: unknown) => (status(err) === 404 ? [] : Promise.reject(err)),
      ),
    ])
    const problems = namespaceProblems({
      namespaceName: namespace,
      namespace: ns,
      runtimeClassName,
      runtimeClass,
      networkPolicies: policies,
      podLabels: jobLabels('probe', 'probe'),
    })
    // A runtime whose image is not configured is not offered (runtimeVersions), as a local
    // worker does not offer one whose image is not built; a worker with none can run nothing.
    if (!RUNTIMES.some((r) => this.options.images.has(r.image))) {
      problems.push(
        `no sandbox image reference pinned by digest for any runtime (${RUNTIMES.map((r) => r.image).join(', ')}); set AIRLOCK_K8S_IMAGES`,
      )
    }
    return problems
  }

  async checkIsolation(): Promise<IsolationReport> {
    let problems: string[]
    let version = 'unknown'
    try {
      version = (await this.kc.makeApiClient(VersionApi).getCode()).gitVersion
      problems = await this.safetyProblems()
      this.splitStreams = await this.clusterSplitsStreams()
    } catch (err) {
      problems = [`the Kubernetes API cannot be reached: ${(err as Error).message}`]
    }
    const logs = this.splitStreams ? 'stdout and stderr apart' : 'stdout and stderr merged'
    // A node's runsc configuration is not visible through the API server; each sandbox's
    // launcher checks for the filter itself and runs no program without it.
    const seccomp = `seccomp profile ${SANDBOX_SECCOMP_PROFILE_NAME} (whether nodes enforce it cannot be seen from the API server: each sandbox checks it before the program starts, and airlock verify's seccomp probes show it)`
    const detail = `Kubernetes ${version}, RuntimeClass ${this.options.runtimeClassName}, namespace ${this.options.namespace}, ${logs}, ${seccomp}`
    if (problems.length > 0) {
      this.safeUntil = 0
      await this.pool?.pause()
      return { ok: false, technology: 'gvisor', detail, reason: problems.join('; '), isolation: null }
    }
    this.safeUntil = Date.now() + SAFETY_CACHE_MS
    this.kubeVersion = version
    this.pool?.start()
    return {
      ok: true,
      technology: 'gvisor',
      detail,
      reason: null,
      isolation: {
        technology: 'gvisor',
        runtime: 'runsc',
        version: `RuntimeClass ${this.options.runtimeClassName} on Kubernetes ${version}`,
        platform: 'kubernetes',
        network: 'none',
        readOnlyRoot: true,
        uid: SANDBOX_UID,
        capabilities: [],
        seccomp: SANDBOX_SECCOMP_PROFILE_NAME,
      },
    }
  }

  /**
   * Asks the API server for one stream of a pod that does not exist: with the
   * PodLogsQuerySplitStreams feature gate the answer is 404 (no such pod), without it
   * 422 (`stream` may not be specified), before any pod is looked up.
   */
  private async clusterSplitsStreams(): Promise<boolean> {
    if (this.options.logStreams !== 'auto') return false
    try {
      await this.core.readNamespacedPodLog({
        name: 'airlock-log-stream-probe',
        namespace: this.options.namespace,
        stream: 'Stdout',
      })
      return true
    } catch (err) {
      return status(err) === 404
    }
  }

  /** Throws IsolationUnavailableError unless the namespace is (still) safe. */
  private async ensureSafe(): Promise<void> {
    if (Date.now() < this.safeUntil) return
    const problems = await this.safetyProblems()
    if (problems.length > 0) throw new IsolationUnavailableError(problems.join('; '))
    this.safeUntil = Date.now() + SAFETY_CACHE_MS
  }

  /**
   * A runtime is offered when its image is configured. A Kubernetes worker pulls no
   * images to read their manifests, so the version is the catalog's line, which a
   * test checks against the built images (sandbox-images/).
   */
  async runtimeVersions(): Promise<Record<string, string>> {
    return Object.fromEntries(RUNTIMES.filter((r) => this.options.images.has(r.image)).map((r) => [r.name, r.version]))
  }

  async run(request: ExecutionRequest): Promise<JobOutcome> {
    const outcome = await this.launchOrAdopt(request)
    // A runc job (benchmarks only) had a container, not a sandbox; its record says so.
    return request.spec.isolation === 'runc' ? { ...outcome, isolation: this.runcIsolation() } : outcome
  }

  private runcIsolation(): Isolation {
    return {
      technology: 'none',
      runtime: 'runc',
      version: `RuntimeClass runc on Kubernetes ${this.kubeVersion}`,
      platform: 'kubernetes',
      network: 'pod',
      readOnlyRoot: true,
      uid: SANDBOX_UID,
      capabilities: [],
      seccomp: SANDBOX_SECCOMP_PROFILE_NAME,
    }
  }

  private async launchOrAdopt(request: ExecutionRequest): Promise<JobOutcome> {
    const { jobId, spec, tenant } = request
    const runtime = findRuntime(spec.runtime)
    if (!runtime) throw new ExecutorError(`runtime ${spec.runtime} is not in this worker's catalog`)
    const image = this.options.images.get(runtime.image)
    // Not offered here (runtimeVersions): the job ends as error, as for a local worker without the image.
    if (!image)
      throw new ExecutorError(
        `runtime ${spec.runtime} is not offered by this worker: no image reference for sandbox image ${runtime.image} in AIRLOCK_K8S_IMAGES`,
      )
    const t0 = Date.now()
    const name = kubeJobName(jobId)
    const { namespace } = this.options

    const earlier = await this.kubeJobOf(jobId)
    if (earlier) {
      this.options.logger.warn({ jobId, kubeJob: earlier.name }, 'adopting the Kubernetes Job of an earlier attempt')
      return this.followOrEnd(request, t0, earlier)
    }
    await this.ensureSafe()
    if (secretBytes(spec) > MAX_SECRET_BYTES) {
      return outcomeWithoutRun(
        'error',
        `the job's files, stdin and env add up to ${secretBytes(spec)} bytes; the kubernetes executor carries at most ${MAX_SECRET_BYTES}`,
      )
    }
    if (request.signal.aborted) return outcomeWithoutRun('cancelled', REASONS.cancelledBeforeStart)
    const warm = spec.isolation !== 'runc' && this.fitsWarm(spec) ? this.pool?.take(spec.runtime) : undefined
    if (warm) {
      const outcome = await this.runWarm(warm, request, t0)
      if (outcome) return outcome
    }
    const input: ManifestInput = {
      jobId,
      tenant,
      spec,
      runtime,
      namespace,
      image,
      runtimeClassName: this.options.runtimeClassName,
      workspaceMb: this.options.workspaceMb,
      startAllowanceMs: this.options.startAllowanceMs,
      ttlAfterFinishedSeconds: this.options.ttlAfterFinishedSeconds,
      waitForGo: this.options.handOver === 'attach',
    }
    await request.beforeLaunch?.()
    let job: V1Job
    try {
      job = await this.batch.createNamespacedJob({ namespace, body: buildJob(input) })
    } catch (err) {
      // Another attempt got there first: follow its Job rather than start a second.
      if (status(err) !== 409)
        throw new ExecutorError(`the Kubernetes Job could not be created: ${apiMessage(err)}`, { cause: err })
      return this.follow(request, t0)
    }
    const secret = buildSecret(input)
    secret.metadata!.ownerReferences = [
      {
        apiVersion: 'batch/v1',
        kind: 'Job',
        name,
        uid: job.metadata!.uid!,
        controller: true,
        blockOwnerDeletion: false,
      },
    ]
    try {
      await this.core.createNamespacedSecret({ namespace, body: secret })
    } catch (err) {
      if (status(err) !== 409) {
        await this.deleteJob(name)
        throw new ExecutorError(`the job's Secret could not be created: ${apiMessage(err)}`, { cause: err })
      }
    }
    return this.follow(request, t0, { name, fresh: true })
  }

  async adopt(request: ExecutionRequest): Promise<JobOutcome | null> {
    const target = await this.kubeJobOf(request.jobId)
    if (!target) return null
    return this.followOrEnd(request, Date.now(), target)
  }

  /** Follows an earlier attempt's Job, or ends the job when its hand-over to a warm pod was never completed. */
  private async followOrEnd(request: ExecutionRequest, t0: number, target: KubeTarget): Promise<JobOutcome> {
    if (!target.notHandedOver) return this.follow(request, t0, target)
    await this.deleteJob(target.name)
    return outcomeWithoutRun('error', REASONS.handOverStopped)
  }

  /**
   * The Kubernetes Job an earlier attempt at the job launched, if any: its own, or a
   * warm one it claimed (found by its label, with the claim's time from its annotation).
   */
  private async kubeJobOf(jobId: string): Promise<KubeTarget | undefined> {
    const { namespace } = this.options
    const name = kubeJobName(jobId)
    if (await orNotFound(this.batch.readNamespacedJob({ name, namespace }))) return { name }
    const claimed = (await this.batch.listNamespacedJob({ namespace, labelSelector: `${LABEL_CLAIMED_BY}=${name}` }))
      .items[0]
    if (!claimed?.metadata?.name) return undefined
    this.warmJobs.set(jobId, claimed.metadata.name)
    const since = Number(claimed.metadata.annotations?.[ANNOTATION_HANDED_AT])
    // Claimed, but not known to be handed over (its worker stopped in between): the pod
    // may hold part of the job or none. It is ended, not run again and not waited on.
    if (!(Number.isFinite(since) && since > 0)) return { name: claimed.metadata.name, notHandedOver: true }
    // Written by another worker, on the deployment's clock (Redis's); read on this one's.
    return { name: claimed.metadata.name, warmSince: since - clockNow() + Date.now() }
  }

  /** Whether a warm pod (sized for the pool's limits) can run the job as its own pod would. */
  private fitsWarm(spec: JobSpec): boolean {
    const w = this.options.warm
    return (
      !!w &&
      spec.limits.memoryMb === w.limits.memoryMb &&
      spec.limits.cpus === w.limits.cpus &&
      spec.limits.outputBytes <= w.limits.outputBytes
    )
  }

  /** Boots a warm Job for the pool and waits until its container runs, waiting for a job. */
  private async bootWarmPod(runtimeName: string): Promise<WarmPod> {
    const runtime = findRuntime(runtimeName)!
    const image = this.options.images.get(runtime.image)
    if (!image) throw new ExecutorError(`no image reference for sandbox image ${runtime.image}`)
    const warm = this.options.warm!
    await this.ensureSafe()
    const { namespace } = this.options
    const name = `airlock-warm-${this.warmTag}-${this.warmBoots++}`
    const t0 = Date.now()
    await this.batch.createNamespacedJob({
      namespace,
      body: buildWarmJob({
        name,
        runtime,
        namespace,
        image,
        limits: warm.limits,
        runtimeClassName: this.options.runtimeClassName,
        workspaceMb: this.options.workspaceMb,
        startAllowanceMs: this.options.startAllowanceMs,
        ttlAfterFinishedSeconds: this.options.ttlAfterFinishedSeconds,
        maxIdleSeconds: Math.ceil(warm.maxIdleMs / 1000) + 60,
      }),
    })
    try {
      const podName = await this.runningPodOf(name, t0 + Math.max(this.options.startAllowanceMs, 60_000))
      return {
        name,
        podName,
        runtime: runtimeName,
        createdAt: t0,
        bootedAt: performance.now(),
        bootMs: Date.now() - t0,
        // Its Job's deadline is its idle time plus a minute from its creation: past the
        // idle time it is not handed a job that the deadline could cut short.
        alive: () => Date.now() < t0 + warm.maxIdleMs,
        memoryBytes: async () => warm.limits.memoryMb * 1024 * 1024,
        destroy: () => this.deleteJob(name),
      }
    } catch (err) {
      await this.deleteJob(name).catch(() => undefined)
      throw err
    }
  }

  /** The pod of Kubernetes Job `name` once its container runs; rejects if it ends or `deadline` passes first. */
  private async runningPodOf(name: string, deadline: number): Promise<string> {
    for (;;) {
      const pods = (
        await this.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: `${LABEL_JOB}=${name}` })
      ).items
      for (const pod of pods) {
        const state = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME)?.state
        if (state?.running) return pod.metadata!.name!
        if (state?.terminated || pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') {
          throw new ExecutorError(
            `the warm pod ${pod.metadata?.name} ended before any job: ${state?.terminated?.reason ?? pod.status?.phase}`,
          )
        }
      }
      if (Date.now() > deadline) throw new ExecutorError(`the warm pod of ${name} was not running in time`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  /**
   * Hands the job to a warm pod: claims its Job (labels that say whose it is, the job's
   * own deadline), attaches to its container's stdin through the API server and writes
   * the job there (warmJobStream), then follows it as any Job. Undefined when the pod
   * could not take the job before anything of it was sent (the job then gets a Job of
   * its own); once the attach is open, the job is the pod's, whatever happens next.
   */
  private async runWarm(pod: WarmPod, request: ExecutionRequest, t0: number): Promise<JobOutcome | undefined> {
    const { jobId, spec, tenant } = request
    const { namespace } = this.options
    const log = this.options.logger.child({ jobId, kubeJob: pod.name })
    const runtime = findRuntime(spec.runtime)!
    let stdin: PassThrough
    let ws: AttachSocket | undefined
    let handOver: ReturnType<typeof attachFailure>
    try {
      const claimedAt = Date.now()
      const deadline = Math.ceil(
        (claimedAt - pod.createdAt + spec.limits.timeoutMs + this.options.startAllowanceMs) / 1000,
      )
      await this.batch.patchNamespacedJob(
        {
          name: pod.name,
          namespace,
          body: {
            metadata: {
              labels: {
                [LABEL_WARM]: 'claimed',
                [LABEL_CLAIMED_BY]: kubeJobName(jobId),
                [LABEL_TENANT]: tenantLabel(tenant),
              },
              annotations: { [ANNOTATION_CLAIMED_AT]: String(claimedAt), [ANNOTATION_TENANT]: tenant },
            },
            spec: { activeDeadlineSeconds: deadline },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      this.warmJobs.set(jobId, pod.name)
      stdin = new PassThrough()
      const attaching = new Attach(this.kc).attach(namespace, pod.podName, CONTAINER_NAME, null, null, stdin, false)
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // Nothing was written: an attach that opens later is closed unused.
          void attaching.then(
            (late) => late.close(),
            () => undefined,
          )
          reject(new ExecutorError(`the attach to the warm pod did not open within ${ATTACH_TIMEOUT_MS} ms`))
        }, ATTACH_TIMEOUT_MS)
      })
      ws = await Promise.race([attaching, timedOut]).finally(() => clearTimeout(timer))
      handOver = attachFailure(ws)
      // The API server answers the upgrade before it reaches the kubelet; a kubelet it
      // cannot reach shows as a failure status at once. Nothing is written before.
      const early = await Promise.race([handOver.failed, sleep(ATTACH_SETTLE_MS).then(() => undefined)])
      if (early !== undefined) throw new ExecutorError(`the attach to the warm pod failed: ${early}`)
    } catch (err) {
      log.warn({ err: apiMessage(err) }, 'a warm pod could not take its job; it gets a Job of its own')
      this.warmJobs.delete(jobId)
      ws?.close()
      await pod.destroy().catch(() => undefined)
      return undefined
    }
    if (request.signal.aborted) {
      ws.close()
      await pod.destroy().catch(() => undefined)
      this.warmJobs.delete(jobId)
      return outcomeWithoutRun('cancelled', REASONS.cancelledBeforeStart)
    }
    try {
      await request.beforeLaunch?.()
    } catch (err) {
      // The launch was refused (the job ended meanwhile): the pod took nothing of it.
      ws.close()
      await pod.destroy().catch(() => undefined)
      this.warmJobs.delete(jobId)
      throw err
    }
    const warmSince = Date.now()
    stdin.end(warmJobStream(spec, runtime))
    // 'end' comes once every byte is handed to the socket: from then on the job is the
    // pod's, and the end of the attach (the program's end closes it too) is no failure.
    // It is closed once what was written has left: stdinOnce closes the program's stdin then.
    stdin.once('end', () => {
      handOver.done()
      // Once it is handed over, a retry after this worker's crash follows the pod instead
      // of taking the job for one that never reached it (kubeJobOf).
      void this.batch
        .patchNamespacedJob(
          {
            name: pod.name,
            namespace,
            // On the deployment's clock: another worker that takes the job over reads it.
            body: {
              metadata: { annotations: { [ANNOTATION_HANDED_AT]: String(warmSince - Date.now() + clockNow()) } },
            },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        )
        .catch((err: unknown) => log.warn({ err: apiMessage(err) }, 'could not mark the warm Job handed over'))
      const closeBy = Date.now() + ATTACH_TIMEOUT_MS
      const close = () =>
        ws!.readyState === ws!.OPEN && ws!.bufferedAmount > 0 && Date.now() < closeBy
          ? void setTimeout(close, 10)
          : ws!.close()
      close()
    })
    ws.on('error', (err) => log.warn({ err: (err as Error).message }, 'the attach to a warm pod broke'))
    return this.follow(request, t0, { name: pod.name, warmSince, bootMs: pod.bootMs, handOverFailed: handOver.failed })
  }

  /** Watches the Job and its pod until the job has an outcome. */
  private follow(
    request: ExecutionRequest,
    t0: number,
    target: KubeTarget = { name: kubeJobName(request.jobId) },
  ): Promise<JobOutcome> {
    const deps: FollowDeps = {
      kc: this.kc,
      options: this.options,
      splitStreams: () => this.splitStreams,
      onWatchResume: () => void this.watchResumes++,
      podRefusal: (name) => this.podRefusal(name),
      deleteJob: (name) => this.deleteJob(name),
    }
    return new Promise<JobOutcome>((resolve) => new JobFollow(deps, request, t0, target, resolve).start())
  }

  /** The newest FailedCreate message of Kubernetes Job `name`, if its pod was refused. */
  private async podRefusal(name: string): Promise<string | undefined> {
    const events = await this.core.listNamespacedEvent({
      namespace: this.options.namespace,
      fieldSelector: `involvedObject.kind=Job,involvedObject.name=${name},reason=FailedCreate`,
    })
    const newest = events.items.sort((a, b) => eventTime(b) - eventTime(a))[0]
    return newest?.message
  }

  /** Deletes the Job; its pods and Secret are garbage-collected with it. */
  private async deleteJob(name: string): Promise<void> {
    await orNotFound(
      this.batch.deleteNamespacedJob({
        name,
        namespace: this.options.namespace,
        propagationPolicy: 'Background',
        gracePeriodSeconds: 0,
      }),
    )
  }

  async forget(jobId: string): Promise<void> {
    await this.deleteJob(this.warmJobs.get(jobId) ?? kubeJobName(jobId))
    this.warmJobs.delete(jobId)
    // A pod's start takes seconds here: its replacement boots once the job is over.
    this.pool?.refill()
  }

  async reapOrphans(): Promise<number> {
    // Jobs outlive the worker that launched them: a retried attempt adopts its Job, and
    // ttlSecondsAfterFinished removes finished ones nobody came back for.
    return 0
  }

  async close(): Promise<void> {
    // Idle warm Jobs go with the worker that booted them; claimed ones are their jobs'.
    await this.pool?.close()
  }
}

/** What following a Job needs of its executor. */
interface FollowDeps {
  kc: KubeConfig
  options: KubernetesExecutorOptions
  /** Asked when the log is first read: checkIsolation may learn otherwise while the job waits. */
  splitStreams: () => boolean
  onWatchResume: () => void
  podRefusal: (name: string) => Promise<string | undefined>
  deleteJob: (name: string) => Promise<void>
}

/** The streams of one attach to a cold pod: the program's output (a fresh launch only) and its stdin. */
interface AttachStreams {
  out: PassThrough
  err: PassThrough
  stdin: PassThrough
}

/**
 * One job's Kubernetes Job and pod, followed until the job has an outcome. Two watches
 * feed `update`; timers, a cancel, the launcher's report and the hand-over can each end
 * the job too, so every end goes through `settled` and the outcome is resolved once.
 */
class JobFollow {
  private readonly name: string
  private readonly log: Logger
  private readonly spec: JobSpec
  private readonly signal: AbortSignal
  private readonly onOutput: ExecutionRequest['onOutput']
  private readonly limits: { timeoutMs: number; memoryMb: number }
  private readonly watches: [ResumableWatch<V1Job>, ResumableWatch<V1Pod>]

  private job: V1Job | undefined
  private jobSeen = false
  private readonly pods = new Map<string, V1Pod>()
  private logs: ContainerOutput | undefined
  /** When the program started running: the time limit counts from here. */
  private runningSince: number | undefined
  private timeoutTimer: NodeJS.Timeout | undefined
  private unschedulableTimer: NodeJS.Timeout | undefined
  private refusalTimer: NodeJS.Timeout | undefined
  private refusedSince: number | undefined
  private settled = false
  /** A cold pod whose launcher waits for go (AIRLOCK_K8S_HAND_OVER=attach). */
  private handOver: 'none' | 'trying' | 'done' = 'none'
  private attachSocket: AttachSocket | undefined

  constructor(
    private readonly deps: FollowDeps,
    { jobId, spec, signal, onOutput }: ExecutionRequest,
    private readonly t0: number,
    private readonly target: KubeTarget,
    private readonly resolve: (outcome: JobOutcome) => void,
  ) {
    const { namespace, logger, watchTimeoutSeconds } = deps.options
    this.name = target.name
    this.log = logger.child({ jobId, kubeJob: this.name })
    this.spec = spec
    this.signal = signal
    this.onOutput = onOutput
    this.limits = { timeoutMs: spec.limits.timeoutMs, memoryMb: spec.limits.memoryMb }
    this.watches = [
      new ResumableWatch<V1Job>(deps.kc, {
        path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
        query: { fieldSelector: `metadata.name=${this.name}` },
        timeoutSeconds: watchTimeoutSeconds,
        onEvent: (type, object) => this.onJobEvent(type, object),
        onResume: () => deps.onWatchResume(),
        onError: (err) => this.log.warn({ err: apiMessage(err) }, 'job watch broke; resuming'),
      }),
      new ResumableWatch<V1Pod>(deps.kc, {
        path: `/api/v1/namespaces/${namespace}/pods`,
        query: { labelSelector: `${LABEL_JOB}=${this.name}` },
        timeoutSeconds: watchTimeoutSeconds,
        onEvent: (type, object) => this.onPodEvent(type, object),
        onResume: () => deps.onWatchResume(),
        onError: (err) => this.log.warn({ err: apiMessage(err) }, 'pod watch broke; resuming'),
      }),
    ]
  }

  start(): void {
    // A warm pod whose attach broke while the job was sent may hold part of it: never
    // run again, and not a timeout of a program that may never have started.
    void this.target.handOverFailed?.then((why) => {
      this.endByUs({ status: 'error', reason: REASONS.handOverFailed(why) })
    })
    this.signal.addEventListener('abort', this.onAbort, { once: true })
    if (this.signal.aborted) {
      this.onAbort()
      return
    }
    for (const w of this.watches) w.start()
  }

  // A property, not a method: the same function has to be removed from the signal.
  private readonly onAbort = (): void => {
    const reason = this.runningSince ? REASONS.cancelledWhileRunning : REASONS.cancelledBeforeStart
    this.endByUs({ status: 'cancelled', reason })
  }

  private onJobEvent(type: WatchEventType, job: V1Job): void {
    if (type === 'DELETED') {
      this.job = undefined
      if (this.jobSeen) {
        this.finishWith(outcomeWithoutRun('error', 'the Kubernetes Job was deleted by someone else before it finished'))
      }
      return
    }
    this.jobSeen = true
    this.job = job
    this.update()
  }

  private onPodEvent(type: WatchEventType, pod: V1Pod): void {
    const key = pod.metadata?.name ?? ''
    if (type === 'DELETED') this.pods.delete(key)
    else this.pods.set(key, pod)
    this.update()
  }

  private update(): void {
    if (this.settled) return
    const pod = this.newestPod()
    if (pod?.spec?.nodeName && this.handOver === 'none' && this.awaitsGo(pod)) void this.handOverTo(pod)
    const seen: Observation = observe(this.job, pod, this.limits)
    this.rearmWaits(pod, seen)
    switch (seen.kind) {
      case 'pending':
        break
      case 'unschedulable':
        this.waitForNode(seen.message)
        break
      case 'cannot-start':
        this.endByUs({ status: 'error', reason: seen.reason })
        break
      case 'running':
        this.onRunning(pod)
        break
      case 'ended':
        this.onEnded(pod, seen)
        break
    }
  }

  /** The unschedulable wait lasts only while the pod is unschedulable, the refusal checks only while there is none. */
  private rearmWaits(pod: V1Pod | undefined, seen: Observation): void {
    if (seen.kind !== 'unschedulable' && this.unschedulableTimer) {
      clearTimeout(this.unschedulableTimer)
      this.unschedulableTimer = undefined
    }
    if (pod) clearTimeout(this.refusalTimer)
    else if (this.job && seen.kind === 'pending') {
      this.refusalTimer ??= setTimeout(() => void this.checkRefusal(), REFUSAL_CHECK_MS)
    }
  }

  private waitForNode(message: string): void {
    this.unschedulableTimer ??= setTimeout(() => {
      const waitMs = this.deps.options.unschedulableWaitMs
      const reason = `no node of the sandbox pool can take this job after ${waitMs} ms: ${message}`
      this.endByUs({ status: 'error', reason })
    }, this.deps.options.unschedulableWaitMs)
  }

  private onRunning(pod: V1Pod | undefined): void {
    // A fresh launcher waiting for go runs nothing until the hand-over, which starts the clock and reads the output.
    if (this.target.fresh && this.awaitsGo(pod)) return
    if (this.runningSince === undefined) {
      // The time limit counts from when the program runs, as with the local
      // executor: for a warm pod, from when it was handed the job.
      this.runningSince = this.target.warmSince ?? Date.now()
      this.startTimer()
    }
    if (pod) this.followLogs(pod)
  }

  private onEnded(pod: V1Pod | undefined, seen: Extract<Observation, { kind: 'ended' }>): void {
    this.stopAll()
    // An attach that carried the output ends with the container (and the log
    // then continues it if the report was not read); else the log has it all.
    if (pod && seen.end.status !== 'timeout' && !(this.attachSocket && this.logs)) this.followLogs(pod)
    // A warm pod's container started before its job: the program started at the hand-over.
    // A fresh cold pod's program started at the go line, not with its container.
    const wentAt = this.target.fresh && this.handOver === 'done' ? this.runningSince : undefined
    const startedAt = this.target.warmSince ?? wentAt ?? seen.startedAt ?? this.runningSince ?? null
    const finishedAt = seen.finishedAt ?? Date.now()
    this.resolveAfterLog({
      ...seen.end,
      startupMs: startedAt === null ? null : Math.max(0, startedAt - this.t0),
      runMs: startedAt === null ? null : Math.max(0, finishedAt - startedAt),
      ...(startedAt === null ? {} : startOf(this.target)),
    })
  }

  private newestPod(): V1Pod | undefined {
    const created = (pod: V1Pod) => new Date(pod.metadata?.creationTimestamp ?? 0).getTime()
    return [...this.pods.values()].sort((a, b) => created(b) - created(a))[0]
  }

  private outputOf(pod: V1Pod): ContainerOutput {
    this.logs ??= new ContainerOutput({
      kc: this.deps.kc,
      target: { namespace: this.deps.options.namespace, pod: pod.metadata!.name!, container: CONTAINER_NAME },
      capBytes: this.spec.outputTextBytes ?? this.spec.limits.outputBytes,
      split: this.deps.splitStreams(),
      onOutput: this.onOutput,
      onProblem: (err) => {
        this.log.warn({ err: apiMessage(err) }, 'container log stream broke; resuming or falling back')
      },
      onReport: (report) => this.endByReport(report),
    })
    return this.logs
  }

  private followLogs(pod: V1Pod): void {
    this.outputOf(pod).start()
  }

  /** Whether the pod's launcher waits for a go line (cold, from a worker with AIRLOCK_K8S_HAND_OVER=attach). */
  private awaitsGo(pod: V1Pod | undefined): boolean {
    const container = pod?.spec?.containers?.find((c) => c.name === CONTAINER_NAME)
    return this.target.warmSince === undefined && container?.stdin === true
  }

  private startTimer(): void {
    this.timeoutTimer ??= setTimeout(
      () => this.endByUs({ status: 'timeout', reason: REASONS.timeLimit(this.spec.limits.timeoutMs) }),
      Math.max(0, this.runningSince! + this.spec.limits.timeoutMs - Date.now()),
    )
  }

  /**
   * Attaches to the pod as soon as its container runs (the attach reaches the
   * runtime directly; the kubelet's status of it comes up to a second later) and
   * sends the go line, retrying until the container takes it or the start allowance
   * (at least HAND_OVER_MIN_MS) is spent.
   */
  private async handOverTo(pod: V1Pod): Promise<void> {
    this.handOver = 'trying'
    const podName = pod.metadata!.name!
    const deadline = Date.now() + Math.max(HAND_OVER_MIN_MS, this.deps.options.startAllowanceMs)
    let waitMs = HAND_OVER_RETRY_MS
    let problem = 'the container did not run'
    while (!this.settled) {
      const streams: AttachStreams = { out: new PassThrough(), err: new PassThrough(), stdin: new PassThrough() }
      const [out, err] = this.target.fresh ? [streams.out, streams.err] : [null, null]
      const ws = await new Attach(this.deps.kc)
        .attach(this.deps.options.namespace, podName, CONTAINER_NAME, out, err, streams.stdin, false)
        .catch((e: unknown) => void (problem = apiMessage(e)))
      // Refused outright (the worker's Role lacks pods/attach): no retry can help.
      if (!ws && /\b403\b|forbidden/i.test(problem)) {
        const reason =
          `the worker may not attach to sandbox pods (${problem}): ` +
          'grant pods/attach or set AIRLOCK_K8S_HAND_OVER=log; the job was not run'
        return this.endByUs({ status: 'error', reason })
      }
      if (ws) {
        const watch = attachFailure(ws)
        // An attach the kubelet refuses (no running container yet) reports so at once.
        const early = await Promise.race([watch.failed, sleep(ATTACH_SETTLE_MS).then(() => undefined)])
        if (early === undefined && !this.settled) return this.sendGo(pod, ws, watch, streams)
        ws.close()
        if (early !== undefined) problem = early
      }
      if (this.settled) return
      if (Date.now() >= deadline) {
        const reason = `the job could not be handed to its pod (${problem}); it was not run`
        return this.endByUs({ status: 'error', reason })
      }
      await sleep(waitMs)
      waitMs = Math.min(waitMs * 2, HAND_OVER_RETRY_MAX_MS)
    }
  }

  /**
   * Sends go through an attach the container took. A fresh launch reads the
   * program's output through that attach from its first byte; an adopted one only
   * sends go, which a launcher that already had it never reads, and reads the log as before.
   */
  private sendGo(pod: V1Pod, ws: AttachSocket, watch: ReturnType<typeof attachFailure>, streams: AttachStreams): void {
    watch.done()
    ws.on('error', (e) => {
      this.log.warn({ err: (e as Error).message }, 'the attach to a cold pod broke; its log is read instead')
    })
    if (this.target.fresh) {
      const output = this.outputOf(pod)
      streams.out.on('data', (c: Buffer) => output.feed('stdout', c))
      streams.err.on('data', (c: Buffer) => output.feed('stderr', c))
      ws.on('close', () => output.attachEnded())
      this.attachSocket = ws
      this.runningSince = Date.now()
      this.startTimer()
    }
    this.handOver = 'done'
    streams.stdin.write(WARM_GO)
    if (!this.target.fresh) setTimeout(() => ws.close(), ATTACH_SETTLE_MS).unref()
  }

  /**
   * A Job without a pod: the Job controller's pod was refused at admission (a
   * LimitRange, Pod Security, the quota), which shows only as a FailedCreate
   * event. A full quota may clear, so it gets the unschedulable wait; the rest
   * end the job at once with the API server's words.
   */
  private async checkRefusal(): Promise<void> {
    this.refusalTimer = undefined
    const refusal = await this.deps.podRefusal(this.name).catch((err: unknown) => {
      this.log.warn({ err: apiMessage(err) }, "could not read the Job's events")
      return undefined
    })
    if (this.settled || this.newestPod()) return
    if (refusal !== undefined) {
      this.refusedSince ??= Date.now()
      if (!isTransientRefusal(refusal) || Date.now() - this.refusedSince >= this.deps.options.unschedulableWaitMs) {
        return this.endByUs({ status: 'error', reason: `the cluster refused the job's pod: ${refusal}` })
      }
    }
    this.refusalTimer = setTimeout(() => void this.checkRefusal(), REFUSAL_CHECK_MS)
  }

  /**
   * The launcher reported the program's end on the log, with all of its output
   * read: the job ends now rather than when the kubelet's status shows it (on its
   * relist, up to a second later). Only a plain exit is taken from the report; a
   * signal's status waits for the container's (an OOM kill shows only there).
   */
  private endByReport(report: ExitReport): void {
    if (this.settled || this.runningSince === undefined || report.exitCode > SIGNAL_EXIT_BASE) return
    const startedAt = this.target.warmSince ?? this.runningSince
    this.stopAll()
    this.resolveAfterLog({
      ...classifyEnd({ exitStatus: report.exitCode, timedOut: false, cancelled: false, oomKills: 0, ...this.limits }),
      startupMs: Math.max(0, startedAt - this.t0),
      runMs: Math.max(0, Math.round(report.at - startedAt)),
      endedAt: report.at,
      ...startOf(this.target),
    })
  }

  /**
   * Ends the job by deleting its Kubernetes Job (pods and Secret go with it). The
   * log is read on until the container is gone (at most DRAIN_GRACE_MS): the
   * container runtime holds a line without its newline until the stream closes.
   */
  private endByUs(end: Pick<JobOutcome, 'status' | 'reason'>): void {
    if (this.settled) return
    const startedAt = this.runningSince ?? null
    const endedAt = Date.now()
    this.stopAll()
    const deleted = this.deps
      .deleteJob(this.name)
      .catch((err: unknown) => this.log.error({ err: apiMessage(err) }, 'could not delete the Kubernetes Job'))
    this.resolveAfterLog(
      {
        status: end.status,
        exitCode: null,
        signal: null,
        reason: end.reason,
        startupMs: startedAt === null ? null : Math.max(0, startedAt - this.t0),
        runMs: startedAt === null ? null : endedAt - startedAt,
        endedAt,
        ...(startedAt === null ? {} : startOf(this.target)),
      },
      deleted,
    )
  }

  private finishWith(outcome: JobOutcome): void {
    if (this.settled) return
    this.stopAll()
    this.logs?.stop()
    this.resolve(outcome)
  }

  private stopAll(): void {
    this.settled = true
    clearTimeout(this.timeoutTimer)
    clearTimeout(this.unschedulableTimer)
    clearTimeout(this.refusalTimer)
    this.signal.removeEventListener('abort', this.onAbort)
    for (const w of this.watches) w.stop()
    this.attachSocket?.close()
  }

  /**
   * Resolves once the log has ended (the container is gone), at most after
   * DRAIN_GRACE_MS, with the outcome and the output read by then.
   */
  private resolveAfterLog(
    end: Omit<JobOutcome, 'stdout' | 'stderr' | 'truncated'>,
    alsoWaitFor?: Promise<unknown>,
  ): void {
    const grace = () => new Promise((r) => setTimeout(r, DRAIN_GRACE_MS))
    const drained = this.logs ? Promise.race([this.logs.done, grace()]) : undefined
    void Promise.all([drained, alsoWaitFor]).then(() => {
      const logs = this.logs
      logs?.stop()
      // The launcher's clock of the program's end, when the log showed it; the kubelet's is to the second.
      const endedAt = end.endedAt ?? logs?.report?.at ?? null
      const stdout = logs?.stdout.text() ?? ''
      const stderr = logs?.stderr.text() ?? ''
      this.resolve({ ...end, endedAt, stdout, stderr, truncated: logs?.truncated ?? false })
    })
  }
}

function startOf(target: KubeTarget): Pick<JobOutcome, 'sandboxStart' | 'bootMs'> {
  return target.warmSince === undefined
    ? { sandboxStart: 'cold' }
    : { sandboxStart: 'warm', ...(target.bootMs === undefined ? {} : { bootMs: target.bootMs }) }
}

function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as { message?: string } | string | undefined
    const message = typeof body === 'string' ? (tryJson(body)?.message ?? body) : body?.message
    return `HTTP ${err.code}: ${message ?? 'no message'}`
  }
  return (err as Error)?.message ?? String(err)
}

function tryJson(s: string): { message?: string } | undefined {
  try {
    return JSON.parse(s) as { message?: string }
  } catch {
    return undefined
  }
}
