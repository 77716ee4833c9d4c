/**
 * Test harness around a real Kubernetes control plane (test/kube/control-plane.sh):
 * starts it for a test file, applies our sandbox manifests from deploy/, registers
 * nodes, and stands in for the kubelet on those nodes.
 *
 * Why a harness and not kwok: each test decides how its pod ends (exit code, OOM
 * kill, image pull failure, never finishing) and what it prints, which kwok's
 * stage rules can only express through pod annotations the executor would have to
 * set. The harness does exactly what a kubelet does at the API: it writes pod
 * status through the status subresource, finalizes deleted pods, and serves
 * container logs on the node's kubelet port, where the API server's own log proxy
 * reaches it. Everything else (admission, the Job controller, the scheduler,
 * garbage collection) is the real thing. Real containers come with a real kubelet.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer as createHttpsServer, type Server } from 'node:https'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  loadAllYaml,
  type KubernetesObject,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node'

const run = promisify(execFile)
const HERE = new URL('.', import.meta.url).pathname
const ROOT = join(HERE, '..', '..')

interface TestLike {
  teardown(fn: () => unknown): void
}

export async function freePort(): Promise<number> {
  const server = createNetServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function isFree(port: number): Promise<boolean> {
  const server = createNetServer()
  const free = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
  if (free) await new Promise((resolve) => server.close(resolve))
  return free
}

/** A free port whose next one is free too: etcd listens for its peers on its client port + 1. */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort()
    if (port < 65535 && (await isFree(port + 1))) return port
  }
  throw new Error('no two free consecutive ports on loopback')
}

export interface Cluster {
  dir: string
  kubeconfig: string
  kc: KubeConfig
  core: CoreV1Api
  objects: KubernetesObjectApi
}

/** Starts a control plane for this test file (built or reused binaries) and stops it at teardown. */
export async function startCluster(t: TestLike, options: { featureGates?: string } = {}): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-kube-'))
  const env = {
    ...process.env,
    AIRLOCK_KUBE_API_PORT: String(await freePort()),
    AIRLOCK_KUBE_ETCD_PORT: String(await freePortPair()),
    AIRLOCK_KUBE_FEATURE_GATES: options.featureGates ?? '',
  }
  t.teardown(async () => {
    await run('bash', [join(HERE, 'control-plane.sh'), 'stop', dir]).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  })
  // Building from nothing takes minutes; a cached build, seconds.
  await run('bash', [join(HERE, 'control-plane.sh'), 'start', dir], {
    env,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 30 * 60_000,
  })
  const kubeconfig = join(dir, 'kubeconfig')
  const kc = new KubeConfig()
  kc.loadFromFile(kubeconfig)
  const core = kc.makeApiClient(CoreV1Api)
  // The service-account controller creates "default", which pod admission needs.
  for (let i = 0; i < 100; i++) {
    if (
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' }).then(
        () => true,
        () => false,
      )
    )
      break
    await sleep(100)
  }
  return { dir, kubeconfig, kc, core, objects: KubernetesObjectApi.makeApiClient(kc) }
}

/** kubectl, built with the control plane (test/kube/build.sh). */
export async function kubectlPath(): Promise<string> {
  return join(
    (await run('bash', [join(HERE, 'build.sh')], { maxBuffer: 64 * 1024 * 1024, timeout: 30 * 60_000 })).stdout.trim(),
    'kubectl',
  )
}

/** An overlay of deploy/kubernetes rendered by kustomize, as objects. */
export async function renderOverlay(overlay: string): Promise<{ yaml: string; objects: KubernetesObject[] }> {
  const { stdout } = await run(await kubectlPath(), ['kustomize', join(ROOT, 'deploy/kubernetes/overlays', overlay)], {
    maxBuffer: 16 * 1024 * 1024,
  })
  return { yaml: stdout, objects: loadAllYaml(stdout) as KubernetesObject[] }
}

/**
 * What makes the sandbox namespace safe, as operators apply it (the self-managed
 * overlay's objects labelled airlock.dev/component=sandbox, as cluster.sh applies
 * them): the namespace, its deny-all NetworkPolicy, quota and limits, and the
 * gvisor RuntimeClass.
 */
export async function sandboxManifests(): Promise<KubernetesObject[]> {
  const { objects } = await renderOverlay('self-managed')
  return objects.filter((o) => o.metadata?.labels?.['airlock.dev/component'] === 'sandbox')
}

export async function applyObjects(cluster: Cluster, objects: KubernetesObject[]): Promise<void> {
  for (const o of objects) {
    try {
      await cluster.objects.create(o)
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409)) throw err
      const current = await cluster.objects.read(o as KubernetesObject & { metadata: { name: string } })
      await cluster.objects.replace({
        ...o,
        metadata: { ...o.metadata, resourceVersion: current.metadata?.resourceVersion },
      })
    }
  }
}

export async function deleteObject(cluster: Cluster, o: KubernetesObject): Promise<void> {
  await cluster.objects.delete(o).catch((err: unknown) => {
    if (!(err instanceof ApiException && err.code === 404)) throw err
  })
}

/** Behaviour of a sandbox container, as the test wants the kubelet to report it. `output` is stdout. */
export type Behaviour =
  | { exitCode: number; output?: string; stderr?: string; runMs?: number }
  | { oomKilled: true; output?: string; runMs?: number }
  | { imagePullError: string }
  /** Runs until the pod is deleted. */
  | { hang: true; output?: string; stderr?: string }
  /** Accepted by the node, but its container never gets created. */
  | { creating: true }

interface PodRun {
  behaviour: Behaviour
  startedAt: Date
  output: string
  stderr: string
  terminated: boolean
}

export const GVISOR_NODE = 'gvisor-pool-1'
export const GENERAL_NODE = 'general-pool-1'

/**
 * Stands in for the kubelet of the test nodes: one gVisor-pool node (labelled and
 * tainted as the RuntimeClass expects) and one ordinary node.
 */
export class FakeKubelet {
  private readonly plans = new Map<string, Behaviour>()
  private readonly runs = new Map<string, PodRun>()
  private server: Server | undefined
  private stopped = false
  private loop: Promise<void> | undefined
  /** Pods this kubelet saw, with the node they were bound to. */
  readonly seen = new Map<string, { node: string; pod: V1Pod }>()

  /**
   * @param splitStreams whether this kubelet has the PodLogsQuerySplitStreams feature
   * gate: with it a log request may ask for stdout or stderr alone; without it such a
   * request gets the real kubelet's 400.
   */
  constructor(
    private readonly cluster: Cluster,
    public splitStreams = true,
  ) {}

  /** How the pod of Kubernetes Job `kubeJob` behaves (default: prints nothing, exits 0). */
  plan(kubeJob: string, behaviour: Behaviour): void {
    this.plans.set(kubeJob, behaviour)
  }

  async start(t: TestLike): Promise<void> {
    const port = await this.serveLogs()
    t.teardown(() => this.stop())
    await this.registerNode(GVISOR_NODE, port, '8Gi', { 'airlock.dev/pool': 'gvisor' }, [
      { key: 'airlock.dev/pool', value: 'gvisor', effect: 'NoSchedule' },
    ])
    // Bigger than the gVisor node, so a pod that lands nowhere shows the pool is enforced.
    await this.registerNode(GENERAL_NODE, port, '64Gi', { 'airlock.dev/pool': 'general' }, [])
    this.loop = this.sync()
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.loop
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)))
    this.server?.closeAllConnections()
  }

  private async serveLogs(): Promise<number> {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-kubelet-'))
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=fake-kubelet',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ])
    const [key, cert] = await Promise.all([readFile(join(dir, 'key.pem')), readFile(join(dir, 'cert.pem'))])
    await rm(dir, { recursive: true, force: true })
    this.server = createHttpsServer({ key, cert }, (req, res) => {
      // /containerLogs/{namespace}/{pod}/{container}?follow=true
      const url = new URL(req.url ?? '/', 'https://kubelet')
      const [, kind, namespace, pod] = url.pathname.split('/')
      const podRun = kind === 'containerLogs' ? this.runs.get(`${namespace}/${pod}`) : undefined
      if (!podRun) {
        res.writeHead(404).end('no such container')
        return
      }
      // As the kubelet (server.go, getContainerLogs): the log holds both streams unless one is chosen.
      const stream = url.searchParams.get('stream') ?? 'All'
      if (stream !== 'All' && !this.splitStreams) {
        res
          .writeHead(400)
          .end(
            `unable to return the given log stream: "${stream}". Please enable PodLogsQuerySplitStreams feature gate in kubelet`,
          )
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write(
        stream === 'Stdout' ? podRun.output : stream === 'Stderr' ? podRun.stderr : podRun.output + podRun.stderr,
      )
      const follow = url.searchParams.get('follow') === 'true'
      if (!follow || podRun.terminated) return void res.end()
      const timer = setInterval(() => {
        if (podRun.terminated || this.stopped) {
          clearInterval(timer)
          res.end()
        }
      }, 50)
      res.on('close', () => clearInterval(timer))
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as { port: number }).port
  }

  private async registerNode(
    name: string,
    kubeletPort: number,
    memory: string,
    labels: Record<string, string>,
    taints: { key: string; value: string; effect: string }[],
  ): Promise<void> {
    const resources = { cpu: '4', memory, pods: '110', 'ephemeral-storage': '50Gi' }
    const node: V1Node = {
      metadata: { name, labels: { ...labels, 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
      spec: { taints },
    }
    const created = await this.cluster.core.createNode({ body: node })
    created.status = {
      capacity: resources,
      allocatable: resources,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'fake kubelet',
          lastHeartbeatTime: new Date(),
          lastTransitionTime: new Date(),
        },
      ],
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
      nodeInfo: {
        architecture: 'amd64',
        bootID: '',
        containerRuntimeVersion: 'fake://1',
        kernelVersion: '',
        kubeProxyVersion: '',
        kubeletVersion: 'v1.34.4',
        machineID: '',
        operatingSystem: 'linux',
        osImage: 'fake',
        systemUUID: '',
      },
    }
    await this.cluster.core.replaceNodeStatus({ name, body: created })
    // Admission (TaintNodesByCondition) taints new nodes not-ready; the node-lifecycle
    // controller lifts that once the node reports Ready. That controller is off here
    // (nothing renews node leases), so do its part.
    const current = await this.cluster.core.readNode({ name })
    current.spec = {
      ...current.spec,
      taints: (current.spec?.taints ?? []).filter((t) => t.key !== 'node.kubernetes.io/not-ready'),
    }
    await this.cluster.core.replaceNode({ name, body: current })
  }

  private async sync(): Promise<void> {
    while (!this.stopped) {
      try {
        const pods = await this.cluster.core.listPodForAllNamespaces()
        for (const pod of pods.items) await this.syncPod(pod)
      } catch {
        // The API server may be restarting; try again.
      }
      await sleep(100)
    }
  }

  private async syncPod(pod: V1Pod): Promise<void> {
    const node = pod.spec?.nodeName
    const name = pod.metadata!.name!
    const namespace = pod.metadata!.namespace!
    if (!node) return
    this.seen.set(`${namespace}/${name}`, { node, pod })
    if (pod.metadata?.deletionTimestamp) {
      // What a kubelet does once the containers are gone: remove the pod for good.
      const podRun = this.runs.get(`${namespace}/${name}`)
      if (podRun) podRun.terminated = true
      await this.cluster.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }).catch(() => undefined)
      return
    }
    const key = `${namespace}/${name}`
    let podRun = this.runs.get(key)
    if (!podRun) {
      const kubeJob = pod.metadata?.labels?.['airlock.dev/job'] ?? ''
      // A warm pod waits on its stdin for a job, which this kubelet cannot attach to.
      const behaviour =
        this.plans.get(kubeJob) ?? (pod.metadata?.labels?.['airlock.dev/warm'] ? { hang: true } : { exitCode: 0 })
      podRun = {
        behaviour,
        startedAt: new Date(),
        output: 'output' in behaviour ? (behaviour.output ?? '') : '',
        stderr: 'stderr' in behaviour ? (behaviour.stderr ?? '') : '',
        terminated: false,
      }
      this.runs.set(key, podRun)
      await this.writeStatus(pod, podRun, false)
      return
    }
    if (podRun.terminated) return
    const b = podRun.behaviour
    const runMs = 'runMs' in b ? (b.runMs ?? 0) : 0
    if (('exitCode' in b || 'oomKilled' in b) && Date.now() - podRun.startedAt.getTime() >= runMs) {
      if (await this.writeStatus(pod, podRun, true)) podRun.terminated = true
    }
  }

  /** Writes the pod status a kubelet would; false on a conflict (retried on the next pass). */
  private async writeStatus(pod: V1Pod, podRun: PodRun, end: boolean): Promise<boolean> {
    const b = podRun.behaviour
    const image = pod.spec!.containers[0]!.image!
    const now = new Date()
    let state: NonNullable<NonNullable<V1Pod['status']>['containerStatuses']>[number]['state']
    let phase = 'Running'
    if ('creating' in b) {
      state = { waiting: { reason: 'ContainerCreating' } }
      phase = 'Pending'
    } else if ('imagePullError' in b) {
      state = { waiting: { reason: 'ErrImagePull', message: b.imagePullError } }
      phase = 'Pending'
    } else if (end) {
      const oom = 'oomKilled' in b
      const exitCode = oom ? 137 : (b as { exitCode: number }).exitCode
      state = {
        terminated: {
          exitCode,
          reason: oom ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error',
          startedAt: podRun.startedAt,
          finishedAt: now,
        },
      }
      phase = exitCode === 0 ? 'Succeeded' : 'Failed'
    } else {
      state = { running: { startedAt: podRun.startedAt } }
    }
    const running = phase === 'Running'
    pod.status = {
      ...pod.status,
      phase,
      hostIP: '127.0.0.1',
      podIP: '10.244.0.10',
      startTime: pod.status?.startTime ?? podRun.startedAt,
      conditions: [
        ...(pod.status?.conditions ?? []).filter((c) => c.type === 'PodScheduled'),
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: running ? 'True' : 'False', lastTransitionTime: now },
        { type: 'Ready', status: running ? 'True' : 'False', lastTransitionTime: now },
      ],
      containerStatuses: [
        {
          name: pod.spec!.containers[0]!.name,
          image,
          imageID: '',
          ready: running,
          restartCount: 0,
          started: running,
          state,
        },
      ],
    }
    try {
      await this.cluster.core.replaceNamespacedPodStatus({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        body: pod,
      })
      return true
    } catch {
      return false
    }
  }
}
