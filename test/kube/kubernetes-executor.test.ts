import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiException, BatchV1Api, type KubernetesObject } from '@kubernetes/client-node'
import type { JobSpec } from '../../core/job-spec.js'
import { createLogger } from '../../core/logger.js'
import { RUNTIMES } from '../../core/runtimes.js'
import { ExecutorError, IsolationUnavailableError } from '../../worker/executors/executor.js'
import { kubeJobName, LABEL_JOB } from '../../worker/executors/kubernetes/job-manifests.js'
import {
  KubernetesExecutor,
  type KubernetesExecutorOptions,
} from '../../worker/executors/kubernetes/kubernetes-executor.js'
import {
  applyObjects,
  deleteObject,
  FakeKubelet,
  GVISOR_NODE,
  sandboxManifests,
  startCluster,
  type Behaviour,
  type Cluster,
} from './cluster.js'

const NAMESPACE = 'airlock-sandbox'
const IMAGE = `registry.invalid/airlock/default@sha256:${'a'.repeat(64)}`

const cluster = await startCluster(t)
const manifests = await sandboxManifests()
await applyObjects(cluster, manifests)
const kubelet = new FakeKubelet(cluster)
await kubelet.start(t)
const batch = cluster.kc.makeApiClient(BatchV1Api)

function executor(options: Partial<KubernetesExecutorOptions> = {}, on: Cluster = cluster): KubernetesExecutor {
  return new KubernetesExecutor({
    kubeconfig: on.kubeconfig,
    namespace: NAMESPACE,
    runtimeClassName: 'gvisor',
    images: new Map(['python', 'node', 'bash', 'c', 'java', 'go', 'rust', 'ml-python'].map((image) => [image, IMAGE])),
    workspaceMb: 32,
    unschedulableWaitMs: 1500,
    startAllowanceMs: 0,
    ttlAfterFinishedSeconds: 600,
    watchTimeoutSeconds: 300,
    logStreams: 'auto',
    logger: createLogger('silent'),
    ...options,
  })
}

function spec(limits: Partial<JobSpec['limits']> = {}): JobSpec {
  return {
    runtime: 'python',
    files: [
      { path: 'main.py', content: 'print("hi")' },
      { path: 'pkg/util.py', content: 'X = 1' },
    ],
    entrypoint: 'main.py',
    args: [],
    stdin: 'some input',
    env: { GREETING: 'hello' },
    limits: { timeoutMs: 30_000, memoryMb: 128, cpus: 0.5, pids: 32, outputBytes: 1024, ...limits },
  }
}

let n = 0
/** Runs a job whose pod behaves as `behaviour`; returns the outcome and what was seen. */
async function runJob(
  behaviour: Behaviour,
  options: {
    limits?: Partial<JobSpec['limits']>
    exec?: KubernetesExecutor
    signal?: AbortSignal
    kubelet?: FakeKubelet
  } = {},
) {
  const jobId = `job_test${Date.now()}${n++}`
  ;(options.kubelet ?? kubelet).plan(kubeJobName(jobId), behaviour)
  const output: string[] = []
  const live = { stdout: '', stderr: '' }
  let launches = 0
  const outcome = await (options.exec ?? executor()).run({
    jobId,
    tenant: 'alice',
    spec: spec(options.limits),
    signal: options.signal ?? new AbortController().signal,
    beforeLaunch: async () => {
      launches++
    },
    onOutput: (stream, text) => {
      output.push(text)
      live[stream] += text
    },
  })
  return { jobId, outcome, output: output.join(''), live, launches }
}

function podsOf(jobId: string) {
  return [...kubelet.seen.values()].filter((s) => s.pod.metadata?.labels?.[LABEL_JOB] === kubeJobName(jobId))
}

async function gone(what: () => Promise<unknown>): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const exists = await what().then(
      () => true,
      (err: unknown) => !(err instanceof ApiException && err.code === 404),
    )
    if (!exists) return true
    await sleep(100)
  }
  return false
}

t.test('the namespace enforces Pod Security restricted: a pod that breaks it is refused', async (t) => {
  const err = await cluster.core
    .createNamespacedPod({
      namespace: NAMESPACE,
      body: { metadata: { name: 'root-pod' }, spec: { containers: [{ name: 'c', image: IMAGE }] } },
    })
    .then(
      () => null,
      (e: unknown) => e,
    )
  t.ok(err instanceof ApiException && err.code === 403, 'the API server refused a pod without the restricted settings')
  t.match(String((err as ApiException<string>).body), /violates PodSecurity .*restricted/)
})

t.test(
  'a job runs as a Kubernetes Job the real API server accepts, on the gVisor pool, with the RuntimeClass overhead',
  async (t) => {
    const exec = executor()
    const report = await exec.checkIsolation()
    t.equal(report.ok, true, report.reason ?? '')
    t.equal(report.isolation?.platform, 'kubernetes')
    const { jobId, outcome, output, launches } = await runJob({
      exitCode: 0,
      output: 'hello from the pod\n',
      runMs: 300,
    })
    t.equal(outcome.status, 'succeeded')
    t.equal(outcome.exitCode, 0)
    t.equal(outcome.stdout, 'hello from the pod\n', 'stdout came through the API server log proxy')
    t.equal(output, 'hello from the pod\n', 'and was streamed live')
    t.equal(launches, 1)
    const pods = podsOf(jobId)
    t.equal(pods.length, 1, 'one pod')
    const pod = pods[0]!.pod
    t.equal(pods[0]!.node, GVISOR_NODE, 'scheduled onto the gVisor pool only')
    t.same(pod.spec?.overhead, { cpu: '100m', memory: '64Mi' }, 'RuntimeClass admission added the pod overhead')
    t.equal(pod.spec?.runtimeClassName, 'gvisor')
    t.equal(pod.spec?.automountServiceAccountToken, false)
    t.equal(pod.spec?.securityContext?.runAsNonRoot, true)
    const c = pod.spec!.containers[0]!
    t.equal(c.securityContext?.readOnlyRootFilesystem, true)
    t.same(c.securityContext?.capabilities?.drop, ['ALL'])
    t.same(c.resources?.requests, c.resources?.limits, 'requests equal limits')
    // The Secret carried the code and is owned by the Job.
    const secret = await cluster.core.readNamespacedSecret({ name: kubeJobName(jobId), namespace: NAMESPACE })
    t.equal(Buffer.from(secret.data!['file-0']!, 'base64').toString(), 'print("hi")')
    t.equal(secret.metadata?.ownerReferences?.[0]?.kind, 'Job')
    await exec.forget(jobId)
    t.ok(
      await gone(() => batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE })),
      'forget deletes the Job',
    )
    t.ok(
      await gone(() => cluster.core.readNamespacedSecret({ name: kubeJobName(jobId), namespace: NAMESPACE })),
      'and the Secret goes with it',
    )
  },
)

t.test('a non-zero exit code is failed with that code', async (t) => {
  const { outcome } = await runJob({ exitCode: 3, output: 'bad\n' })
  t.equal(outcome.status, 'failed')
  t.equal(outcome.exitCode, 3)
  t.equal(outcome.stdout, 'bad\n')
})

t.test('OOMKilled is oom', async (t) => {
  const { outcome } = await runJob({ oomKilled: true })
  t.equal(outcome.status, 'oom')
  t.match(outcome.reason, /memory limit of 128 MiB/)
})

t.test('a program that runs past its time limit is timeout', async (t) => {
  const { jobId, outcome } = await runJob({ hang: true, output: 'started\n' }, { limits: { timeoutMs: 1000 } })
  t.equal(outcome.status, 'timeout')
  t.equal(outcome.stdout, 'started\n', 'output before the timeout is kept')
  t.ok(
    await gone(() => batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE })),
    'the Job is deleted',
  )
})

t.test("the Job controller's deadline is timeout too (the cluster's backstop)", async (t) => {
  // The container never starts, so only activeDeadlineSeconds can end it.
  const { outcome } = await runJob({ creating: true }, { limits: { timeoutMs: 1000 } })
  t.equal(outcome.status, 'timeout')
})

t.test('an image that cannot be pulled is error with a reason to act on', async (t) => {
  const { jobId, outcome } = await runJob({ imagePullError: 'registry.invalid: no such host' })
  t.equal(outcome.status, 'error')
  t.match(outcome.reason, /could not be pulled \(ErrImagePull\): registry.invalid: no such host/)
  t.ok(
    await gone(() => batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE })),
    'the Job is deleted',
  )
})

t.test('a pod no gVisor node can take is error after the wait, even though an ordinary node could', async (t) => {
  // The LimitRange's largest container (8Gi) plus the RuntimeClass overhead: more than the gVisor node has.
  const { jobId, outcome } = await runJob({ exitCode: 0 }, { limits: { memoryMb: 8192 } })
  t.equal(outcome.status, 'error')
  t.match(outcome.reason, /no node of the sandbox pool can take this job after 1500 ms: 0\/2 nodes are available/)
  t.equal(podsOf(jobId).length, 0, 'the pod was never bound to a node')
})

t.test(
  "a pod the namespace refuses (above its LimitRange) is error at once, with the API server's reason",
  async (t) => {
    const { jobId, outcome } = await runJob({ exitCode: 0 }, { limits: { memoryMb: 16384 } })
    t.equal(outcome.status, 'error')
    t.match(outcome.reason, /^the cluster refused the job's pod: .*maximum memory usage per Container is 8Gi/)
    t.ok(
      await gone(() => batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE })),
      'the Job is deleted',
    )
  },
)

t.test('cancel deletes the Job, its pod and its Secret', async (t) => {
  const controller = new AbortController()
  const running = runJob({ hang: true }, { signal: controller.signal })
  for (let i = 0; i < 100 && ![...kubelet.seen.keys()].some((k) => k.includes('job-test')); i++) await sleep(50)
  await sleep(500)
  controller.abort()
  const { jobId, outcome } = await running
  t.equal(outcome.status, 'cancelled')
  const name = kubeJobName(jobId)
  t.ok(await gone(() => batch.readNamespacedJob({ name, namespace: NAMESPACE })), 'Job gone')
  t.ok(await gone(() => cluster.core.readNamespacedSecret({ name, namespace: NAMESPACE })), 'Secret gone')
  t.ok(
    await gone(async () => {
      const pods = await cluster.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `${LABEL_JOB}=${name}` })
      if (pods.items.length > 0) return
      throw new ApiException(404, 'none', undefined, {})
    }),
    'pods gone',
  )
})

t.test('a second attempt at the same job adopts the running Job instead of launching another', async (t) => {
  const jobId = `job_adopt${Date.now()}`
  kubelet.plan(kubeJobName(jobId), { exitCode: 0, output: 'once\n', runMs: 2000 })
  let launches = 0
  const request = () => ({
    jobId,
    tenant: 'alice',
    spec: spec(),
    signal: new AbortController().signal,
    beforeLaunch: async () => {
      launches++
    },
  })
  const first = executor().run(request())
  while (
    !(await batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE }).then(
      () => true,
      () => false,
    ))
  )
    await sleep(50)
  // A worker that took over, e.g. after the first one died.
  const second = executor().run(request())
  const adopted = executor().adopt(request())
  const [a, b, c] = await Promise.all([first, second, adopted])
  t.equal(a.status, 'succeeded')
  t.equal(b.status, 'succeeded')
  t.equal(c?.status, 'succeeded')
  t.equal(b.stdout, 'once\n')
  t.equal(launches, 1, 'launched once')
  t.equal(podsOf(jobId).length, 1, 'one pod ran')
  t.equal(
    await executor().adopt({ ...request(), jobId: 'job_nothing_here' }),
    null,
    'nothing to adopt when there is no Job',
  )
})

t.test(
  'a warm pod that cannot take its job hands it to a Job of its own, launched once; an unfit job never takes one',
  async (t) => {
    const exec = executor({
      warm: {
        sizes: new Map([['python', { min: 1, max: 1 }]]),
        memoryBudgetMb: 1024,
        maxIdleMs: 60_000,
        limits: spec().limits,
      },
    })
    t.teardown(() => exec.close())
    t.ok((await exec.checkIsolation()).ok)
    const warmJobs = async () =>
      (await batch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: 'airlock.dev/warm' })).items
    const running = async (kubeJob: string) =>
      (
        await cluster.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `${LABEL_JOB}=${kubeJob}` })
      ).items.some((p) => p.status?.phase === 'Running')
    let warm = await warmJobs()
    for (let i = 0; i < 100 && !(warm[0] && (await running(warm[0].metadata!.name!))); i++) {
      await sleep(100)
      warm = await warmJobs()
    }
    t.equal(warm.length, 1, 'the pool booted one warm Job')
    t.equal(warm[0]?.metadata?.labels?.['airlock.dev/warm'], 'idle')
    // Time for the pool to see its pod running and count it idle.
    await sleep(1000)
    const name = warm[0]!.metadata!.name!

    // A job with other limits than the warm pods': its own Job, the warm one left alone.
    const unfit = await runJob({ exitCode: 0, output: 'unfit\n' }, { exec, limits: { memoryMb: 192 } })
    t.match(unfit.outcome, { status: 'succeeded', sandboxStart: 'cold' })
    t.ok(await batch.readNamespacedJob({ name, namespace: NAMESPACE }), 'the warm Job still waits')

    // This kubelet cannot attach to a container: the hand-over fails before anything is sent.
    const { outcome, launches, jobId } = await runJob({ exitCode: 0, output: 'cold\n' }, { exec })
    t.match(outcome, { status: 'succeeded', sandboxStart: 'cold', stdout: 'cold\n' })
    t.equal(launches, 1, 'launched once: the failed hand-over counted no launch')
    t.equal(podsOf(jobId).length, 1, 'its own Job ran it')
    t.ok(
      await gone(() => batch.readNamespacedJob({ name, namespace: NAMESPACE })),
      'the warm Job that failed to take it is deleted, not reused',
    )
  },
)

t.test('where the cluster cannot choose a log stream (the default), stderr arrives merged into stdout', async (t) => {
  const exec = executor()
  const report = await exec.checkIsolation()
  t.match(report.detail, /stdout and stderr merged/, 'the worker says so')
  const { outcome, live } = await runJob({ exitCode: 0, output: 'to stdout\n', stderr: 'to stderr\n' }, { exec })
  t.equal(outcome.stdout, 'to stdout\nto stderr\n')
  t.equal(outcome.stderr, '')
  t.same(live, { stdout: 'to stdout\nto stderr\n', stderr: '' })
})

t.test('with the PodLogsQuerySplitStreams feature gate, stdout and stderr stay apart', async (t) => {
  const gated = await startCluster(t, { featureGates: 'PodLogsQuerySplitStreams=true' })
  await applyObjects(gated, manifests)
  const gatedKubelet = new FakeKubelet(gated)
  await gatedKubelet.start(t)
  const behaviour = { exitCode: 1, output: 'to stdout\n', stderr: 'Traceback: to stderr\n' }

  const exec = executor({}, gated)
  t.match(
    (await exec.checkIsolation()).detail,
    /stdout and stderr apart/,
    'the worker found the API server allows choosing a stream',
  )
  const split = await runJob(behaviour, { exec, kubelet: gatedKubelet })
  t.equal(split.outcome.status, 'failed')
  t.equal(split.outcome.stdout, 'to stdout\n')
  t.equal(split.outcome.stderr, 'Traceback: to stderr\n')
  t.same(split.live, { stdout: 'to stdout\n', stderr: 'Traceback: to stderr\n' }, 'streamed live apart too')

  const forced = executor({ logStreams: 'merged' }, gated)
  t.match((await forced.checkIsolation()).detail, /merged/, 'AIRLOCK_K8S_LOG_STREAMS=merged merges anyway')
  t.equal(
    (await runJob(behaviour, { exec: forced, kubelet: gatedKubelet })).outcome.stdout,
    'to stdout\nTraceback: to stderr\n',
  )

  // A node whose kubelet lacks the gate answers 400; that job falls back to the merged log.
  const warnings: string[] = []
  const logger = createLogger('warn', {}, { write: (line: string) => void warnings.push(line) })
  const onOldNode = executor({ logger }, gated)
  await onOldNode.checkIsolation()
  gatedKubelet.splitStreams = false
  t.teardown(() => {
    gatedKubelet.splitStreams = true
  })
  const fellBack = await runJob(behaviour, { exec: onOldNode, kubelet: gatedKubelet })
  t.equal(fellBack.outcome.stdout, 'to stdout\nTraceback: to stderr\n', 'nothing lost, nothing repeated')
  t.equal(fellBack.outcome.stderr, '')
  t.match(warnings.join(''), /PodLogsQuerySplitStreams feature gate in kubelet/, 'the refusal is logged')
})

t.test('watches interrupted mid-job resume and the job still ends with the right result', async (t) => {
  // The API server ends each watch request after a second; the job runs for several.
  const exec = executor({ watchTimeoutSeconds: 1 })
  const { outcome } = await runJob({ exitCode: 4, output: 'still here\n', runMs: 3500 }, { exec })
  t.equal(outcome.status, 'failed')
  t.equal(outcome.exitCode, 4)
  t.equal(outcome.stdout, 'still here\n')
  t.ok(exec.watchResumes >= 2, `watches were resumed (${exec.watchResumes} times)`)
})

const byKind = (kind: string) => manifests.find((m) => m.kind === kind)!
const cases: { what: string; remove: () => Promise<void>; restore: () => Promise<void>; reason: RegExp }[] = [
  {
    what: 'the deny-all NetworkPolicy',
    remove: () => deleteObject(cluster, byKind('NetworkPolicy')),
    restore: () => applyObjects(cluster, [byKind('NetworkPolicy')]),
    reason: /no NetworkPolicy in airlock-sandbox denies all Ingress and Egress/,
  },
  {
    what: 'the RuntimeClass',
    remove: () => deleteObject(cluster, byKind('RuntimeClass')),
    restore: () => applyObjects(cluster, [byKind('RuntimeClass')]),
    reason: /RuntimeClass gvisor does not exist/,
  },
  {
    what: 'the Pod Security label',
    remove: async () => {
      const ns = byKind('Namespace') as KubernetesObject
      const labels = { ...ns.metadata!.labels }
      delete labels['pod-security.kubernetes.io/enforce']
      await applyObjects(cluster, [{ ...ns, metadata: { ...ns.metadata, labels } }])
    },
    restore: () => applyObjects(cluster, [byKind('Namespace')]),
    reason: /does not enforce Pod Security "restricted"/,
  },
]

for (const c of cases) {
  t.test(`without ${c.what} the executor refuses to launch and says why`, async (t) => {
    await c.remove()
    t.teardown(c.restore)
    const exec = executor()
    const report = await exec.checkIsolation()
    t.equal(report.ok, false, 'not ready')
    t.match(report.reason, c.reason)
    const jobId = `job_refused${Date.now()}`
    const err = await exec.run({ jobId, tenant: 'alice', spec: spec(), signal: new AbortController().signal }).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(err instanceof IsolationUnavailableError, 'run refuses')
    t.match((err as Error).message, c.reason)
    t.equal(
      await batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE }).then(
        () => true,
        () => false,
      ),
      false,
      'no Job was created',
    )
  })
}

t.test('through the API: a kubernetes worker runs jobs, and takes none while the namespace is unsafe', async (t) => {
  const { build } = await import('../helper.js')
  const h = await build(t, {
    env: {
      AIRLOCK_EXECUTOR: 'kubernetes',
      AIRLOCK_K8S_KUBECONFIG: cluster.kubeconfig,
      AIRLOCK_K8S_IMAGES: ['python', 'node', 'bash', 'c', 'java', 'go', 'rust', 'ml-python']
        .map((image) => `${image}=${IMAGE}`)
        .join(','),
      AIRLOCK_ISOLATION_CHECK_INTERVAL_MS: '300',
    },
  })
  const job = await h.run({ runtime: 'python', source: 'print(1)' })
  t.equal(job.status, 'succeeded')
  t.equal(job.executor, 'kubernetes')
  t.equal(job.isolation?.platform, 'kubernetes')
  t.ok(
    await gone(() => batch.readNamespacedJob({ name: kubeJobName(job.id), namespace: NAMESPACE })),
    'the Job is deleted once the result is stored',
  )

  await deleteObject(cluster, byKind('NetworkPolicy'))
  t.teardown(() => applyObjects(cluster, [byKind('NetworkPolicy')]))
  for (let i = 0; i < 100 && h.worker?.isolation?.ok !== false; i++) await sleep(100)
  t.equal(h.worker?.isolation?.ok, false, 'the worker reports not-ready')
  t.match(h.worker?.isolation?.reason, /denies all Ingress and Egress/)
  const refused = await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'print(1)' })
  t.equal(refused.statusCode, 503)
  t.equal(refused.json().code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')

  await applyObjects(cluster, [byKind('NetworkPolicy')])
  for (let i = 0; i < 100 && h.worker?.isolation?.ok !== true; i++) await sleep(100)
  t.equal(h.worker?.isolation?.ok, true, 'ready again once the policy is back')
  t.equal((await h.run({ runtime: 'bash', source: 'echo hi' })).status, 'succeeded')
})

t.test(
  'a runtime whose image is not configured is not offered: its job is an error, the worker still isolates; a worker with no image is not ready',
  async (t) => {
    const onlyPython = executor({ images: new Map([['python', IMAGE]]) })
    t.equal((await onlyPython.checkIsolation()).ok, true)
    const jobId = `job_noimage${Date.now()}`
    const rust: JobSpec = {
      ...spec(),
      runtime: 'rust',
      files: [{ path: 'main.rs', content: 'fn main() {}' }],
      entrypoint: 'main.rs',
    }
    const err = await onlyPython.run({ jobId, tenant: 'alice', spec: rust, signal: new AbortController().signal }).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(
      err instanceof ExecutorError && !(err instanceof IsolationUnavailableError),
      'an error of this job, not a loss of isolation that would hand it back',
    )
    t.match((err as Error).message, /not offered by this worker/)
    t.equal(
      await batch.readNamespacedJob({ name: kubeJobName(jobId), namespace: NAMESPACE }).then(
        () => true,
        () => false,
      ),
      false,
      'no Job was created',
    )
    const none = await executor({ images: new Map() }).checkIsolation()
    t.equal(none.ok, false)
    t.match(none.reason, /no sandbox image reference pinned by digest for any runtime/)
  },
)

t.test("runtimes are offered when their image is configured, at the catalog's version", async (t) => {
  const python = RUNTIMES.find((r) => r.name === 'python')!
  t.same(await executor({ images: new Map([['python', IMAGE]]) }).runtimeVersions(), { python: python.version })
  t.same(Object.keys(await executor().runtimeVersions()).sort(), RUNTIMES.map((r) => r.name).sort())
})
