import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  AuthorizationV1Api,
  type KubernetesObject,
  type V1Container,
  type V1NetworkPolicySpec,
  type V1ObjectMeta,
  type V1PodSpec,
  type V1ServiceSpec,
} from '@kubernetes/client-node'
import { applyObjects, kubectlPath, renderOverlay, startCluster } from './cluster.js'

const run = promisify(execFile)
const OVERLAYS = ['gke', 'self-managed', 'single-node']
const cluster = await startCluster(t)
const kubectl = await kubectlPath()

type Obj = KubernetesObject & { spec?: Record<string, unknown>; data?: Record<string, string> }

function podSpecs(objects: Obj[]): { name: string; spec: V1PodSpec }[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind ?? ''))
    .map((o) => ({
      name: `${o.kind}/${o.metadata?.name}`,
      spec: (o.spec as { template: { spec: V1PodSpec } }).template.spec,
    }))
}

function find(objects: Obj[], kind: string, name: string, namespace?: string): Obj | undefined {
  return objects.find(
    (o) =>
      o.kind === kind && o.metadata?.name === name && (namespace === undefined || o.metadata?.namespace === namespace),
  )
}

function podTemplate(objects: Obj[], kind: string, name: string): { metadata?: V1ObjectMeta; spec: V1PodSpec } {
  return (find(objects, kind, name)!.spec as { template: { metadata?: V1ObjectMeta; spec: V1PodSpec } }).template
}

/**
 * Redis's sizes (`768mb`: k, m, g are powers of 1000; kb, mb, gb of 1024) and Kubernetes quantities (`1Gi`), in bytes.
 */
function redisBytes(size: string): number {
  const m = /^(\d+)(k|kb|m|mb|g|gb)?$/i.exec(size)
  if (!m) return NaN
  const unit =
    { k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 1
  return Number(m[1]) * unit
}
function quantityBytes(quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity)
  if (!m) return NaN
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 }[m[2] as 'Ki'] ?? 1
  return Number(m[1]) * unit
}

const REDIS_SECRET = { name: 'airlock-redis', key: 'REDIS_PASSWORD' }

/** Secret volumes the container mounts: Secret name -> where, and which keys. */
function secretMounts(spec: V1PodSpec, c: V1Container): Map<string, { dir: string; keys: string[] }> {
  const out = new Map<string, { dir: string; keys: string[] }>()
  for (const m of c.volumeMounts ?? []) {
    const secret = spec.volumes?.find((v) => v.name === m.name)?.secret
    if (secret?.secretName)
      out.set(secret.secretName, { dir: m.mountPath, keys: (secret.items ?? []).map((i) => i.key) })
  }
  return out
}

/**
 * Whether the pod's user can read its Secret files: the kubelet makes them root's,
 * with the pod's fsGroup as their group when it has one, so a non-root pod needs an
 * fsGroup that is its own group and a mode its group may read.
 */
function secretsReadable(spec: V1PodSpec): boolean {
  const ctx = spec.securityContext
  const secrets = (spec.volumes ?? []).filter((v) => v.secret)
  return (
    secrets.length > 0 &&
    ctx?.fsGroup !== undefined &&
    ctx.fsGroup === ctx.runAsGroup &&
    secrets.every((v) => ((v.secret?.defaultMode ?? 0o644) & 0o040) !== 0)
  )
}
const METRICS_PORT = 9464

for (const overlay of OVERLAYS) {
  t.test(
    `overlay ${overlay}: the rendered objects are accepted by the real API server (server-side dry run), with no Pod Security warning`,
    async (t) => {
      const { yaml, objects } = await renderOverlay(overlay)
      // Dry runs need the namespaces to exist; they are created for real.
      await applyObjects(
        cluster,
        objects.filter((o) => o.kind === 'Namespace'),
      )
      const file = join(cluster.dir, `${overlay}.yaml`)
      await writeFile(file, yaml)
      const { stdout, stderr } = await run(
        kubectl,
        ['--kubeconfig', cluster.kubeconfig, 'apply', '--dry-run=server', '-f', file],
        { maxBuffer: 16 * 1024 * 1024 },
      )
      t.equal(
        stdout.split('\n').filter((l) => /\(server dry run\)$/.test(l)).length,
        objects.length,
        'every object accepted',
      )
      t.notMatch(stderr, /PodSecurity/, 'no pod template would violate Pod Security restricted')
    },
  )

  t.test(
    `overlay ${overlay}: every pod runs non-root, read-only, without privilege escalation or capabilities, with limits and probes`,
    async (t) => {
      const { objects } = await renderOverlay(overlay)
      const pods = podSpecs(objects)
      t.same(pods.map((p) => p.name).sort(), [
        'Deployment/airlock-api',
        'Deployment/airlock-worker',
        'StatefulSet/redis',
      ])
      for (const { name, spec } of pods) {
        t.equal(spec.securityContext?.runAsNonRoot, true, `${name}: runAsNonRoot`)
        t.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${name}: seccomp`)
        t.notOk(spec.hostNetwork || spec.hostPID || spec.hostIPC, `${name}: no host namespaces`)
        for (const c of spec.containers as V1Container[]) {
          t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${name}/${c.name}: read-only root`)
          t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${name}/${c.name}: no privilege escalation`)
          t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${name}/${c.name}: no capabilities`)
          t.ok(c.resources?.limits?.cpu && c.resources.limits.memory, `${name}/${c.name}: cpu and memory limits`)
          t.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${name}/${c.name}: requests`)
          t.ok(c.livenessProbe && c.readinessProbe, `${name}/${c.name}: probes`)
        }
      }
      const api = pods.find((p) => p.name === 'Deployment/airlock-api')!.spec.containers[0]!
      t.equal(api.livenessProbe?.httpGet?.path, '/healthz')
      t.equal(api.readinessProbe?.httpGet?.path, '/readyz')
      t.equal(
        pods.find((p) => p.name === 'Deployment/airlock-api')!.spec.automountServiceAccountToken,
        false,
        'the API gets no Kubernetes credentials',
      )
      t.ok(
        find(objects, 'PodDisruptionBudget', 'airlock-api') && find(objects, 'PodDisruptionBudget', 'airlock-worker'),
        'PodDisruptionBudgets',
      )
      t.ok(find(objects, 'HorizontalPodAutoscaler', 'airlock-api'), 'the API scales horizontally')
    },
  )

  t.test(
    `overlay ${overlay}: the sandbox namespace enforces restricted, denies all traffic and has a quota and limits`,
    async (t) => {
      const { objects } = await renderOverlay(overlay)
      const ns = find(objects, 'Namespace', 'airlock-sandbox')
      t.equal(ns?.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted')
      const denyAll = objects.filter((o) => o.kind === 'NetworkPolicy' && o.metadata?.namespace === 'airlock-sandbox')
      t.same(
        denyAll.map((p) => (p as Obj).spec),
        [{ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }],
        'exactly one policy there, and it allows nothing',
      )
      t.ok(find(objects, 'ResourceQuota', 'sandboxes', 'airlock-sandbox'), 'ResourceQuota')
      t.ok(find(objects, 'LimitRange', 'sandbox', 'airlock-sandbox'), 'LimitRange')
      t.equal(find(objects, 'ConfigMap', 'airlock-config')?.data?.AIRLOCK_EXECUTOR, 'kubernetes')
      const runtimeClass = find(objects, 'RuntimeClass', 'gvisor') as
        | (Obj & {
            handler?: string
            overhead?: unknown
            scheduling?: { nodeSelector?: object; tolerations?: unknown[] }
          })
        | undefined
      const runc = find(objects, 'RuntimeClass', 'runc') as (Obj & { handler?: string }) | undefined
      if (overlay === 'single-node')
        t.equal(runc?.handler, 'runc', 'the runc comparison RuntimeClass, for the load test on one machine')
      else t.equal(runc, undefined, 'no RuntimeClass without gVisor in a cluster for tenants')
      if (overlay !== 'gke') {
        t.equal(runtimeClass?.handler, 'runsc')
        t.ok(runtimeClass?.overhead, 'pod overhead')
        t.ok(
          runtimeClass?.scheduling?.nodeSelector && runtimeClass.scheduling.tolerations?.length,
          'placed on the gVisor pool',
        )
      } else {
        t.equal(runtimeClass, undefined, 'GKE brings its own gvisor RuntimeClass')
      }
    },
  )
}

for (const overlay of OVERLAYS) {
  t.test(
    `overlay ${overlay}: Redis is capped below its memory limit with noeviction and reads its password from the Secret's file`,
    async (t) => {
      const { objects } = await renderOverlay(overlay)
      const template = podTemplate(objects, 'StatefulSet', 'redis')
      const redis = template.spec.containers[0]!
      const args = redis.args ?? []
      const arg = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined)
      t.equal(
        arg('--maxmemory-policy'),
        'noeviction',
        'a full Redis refuses writes (503 with a code) instead of evicting keys',
      )
      const maxmemory = redisBytes(arg('--maxmemory') ?? '')
      const limit = quantityBytes(String(redis.resources?.limits?.memory))
      t.ok(maxmemory > 0, `maxmemory is set (${arg('--maxmemory')})`)
      t.ok(
        maxmemory <= 0.8 * limit,
        `maxmemory ${arg('--maxmemory')} leaves room under the ${redis.resources?.limits?.memory} limit for an AOF rewrite's copy-on-write`,
      )
      const mounted = secretMounts(template.spec, redis)
      t.same(
        mounted.get(REDIS_SECRET.name),
        { dir: '/etc/redis/secret', keys: [REDIS_SECRET.key] },
        'the Secret airlock-redis is a file',
      )
      t.ok(secretsReadable(template.spec), 'which its user can read (fsGroup, group-readable)')
      t.same(redis.command?.slice(0, 2), ['sh', '-c'])
      t.equal(
        redis.command?.[2],
        'exec redis-server - "$@" <<EOF\nrequirepass "$(cat /etc/redis/secret/REDIS_PASSWORD)"\nEOF\n',
        'redis-server reads requirepass from that file on its standard input, and replaces the shell (PID 1 gets SIGTERM)',
      )
      t.notOk(JSON.stringify(args).includes('requirepass'), 'the password is in no argument')
      t.same(redis.env ?? [], [], 'and in no environment variable')
      for (const probe of [redis.readinessProbe, redis.livenessProbe]) {
        const command = (probe?.exec?.command ?? []).join(' ')
        t.match(
          command,
          /REDISCLI_AUTH="\$\(cat \/etc\/redis\/secret\/REDIS_PASSWORD\)" redis-cli ping/,
          'the probe authenticates',
        )
        t.match(command, /PONG/, 'and checks the answer (redis-cli exits 0 on NOAUTH)')
      }
      t.ok(
        Number(template.spec.securityContext?.runAsUser) > 10000 &&
          Number(template.spec.securityContext?.runAsGroup) > 10000,
        'a uid and gid above the host range',
      )
      const governing = find(
        objects,
        'Service',
        String(find(objects, 'StatefulSet', 'redis')?.spec?.serviceName),
        'airlock-system',
      )?.spec as V1ServiceSpec | undefined
      t.equal(governing?.clusterIP, 'None', "the StatefulSet's serviceName is a headless Service")
      t.same(governing?.selector, { 'app.kubernetes.io/name': 'redis' })
    },
  )

  t.test(
    `overlay ${overlay}: API and workers read the Redis password and the API keys as files of the Secrets, never as environment variables`,
    async (t) => {
      const { objects } = await renderOverlay(overlay)
      t.equal(
        find(objects, 'ConfigMap', 'airlock-config')?.data?.REDIS_URL,
        'redis://redis.airlock-system.svc:6379',
        'REDIS_URL without a password, in the ConfigMap',
      )
      for (const name of ['airlock-api', 'airlock-worker']) {
        const { spec } = podTemplate(objects, 'Deployment', name)
        const c = spec.containers[0]!
        const env = new Map((c.env ?? []).map((e) => [e.name, e]))
        t.notOk(
          (c.env ?? []).some((e) => e.valueFrom?.secretKeyRef) || (c.envFrom ?? []).some((e) => e.secretRef),
          `${name}: no Secret in its environment`,
        )
        const mounted = secretMounts(spec, c)
        t.ok(secretsReadable(spec), `${name}: its user can read the Secrets' files (fsGroup, group-readable)`)
        t.equal(
          env.get('REDIS_PASSWORD_FILE')?.value,
          `${mounted.get(REDIS_SECRET.name)?.dir}/${REDIS_SECRET.key}`,
          `${name}: REDIS_PASSWORD_FILE is the mounted key`,
        )
        if (name === 'airlock-api')
          t.equal(
            env.get('AIRLOCK_API_KEYS_FILE')?.value,
            `${mounted.get('airlock-api-keys')?.dir}/AIRLOCK_API_KEYS`,
            'the API: AIRLOCK_API_KEYS_FILE is the mounted key',
          )
        else t.equal(mounted.get('airlock-api-keys'), undefined, 'workers do not get the API keys')
      }
    },
  )

  t.test(`overlay ${overlay}: no replica count under an autoscaler; workers reach only the API server`, async (t) => {
    const objects: Obj[] = (await renderOverlay(overlay)).objects
    for (const hpa of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
      const target = (hpa.spec as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef
      t.equal(
        find(objects, target.kind, target.name)?.spec?.replicas,
        undefined,
        `${target.kind}/${target.name}: the autoscaler owns its replicas`,
      )
    }
    const egress =
      (find(objects, 'NetworkPolicy', 'worker-kube-api-egress')?.spec as V1NetworkPolicySpec | undefined)?.egress ?? []
    t.ok(egress.length > 0, 'a policy for the API server')
    for (const rule of egress) {
      t.ok(
        rule.to?.length &&
          rule.to.every((peer) => /\/32$|\/128$/.test(peer.ipBlock?.cidr ?? '') && !peer.ipBlock?.except),
        'to single addresses only, never any address',
      )
      t.same(rule.ports?.map((p) => p.port).sort(), [443, 6443])
    }
  })

  t.test(
    `overlay ${overlay}: /metrics is on its own port, which neither the API's Service nor its public NetworkPolicy opens`,
    async (t) => {
      const objects: Obj[] = (await renderOverlay(overlay)).objects
      for (const name of ['airlock-api', 'airlock-worker']) {
        const { metadata, spec } = podTemplate(objects, 'Deployment', name)
        const c = spec.containers[0]!
        const env = new Map((c.env ?? []).map((e) => [e.name, e.value]))
        t.equal(env.get('AIRLOCK_METRICS_PORT'), String(METRICS_PORT), `${name}: metrics listener on ${METRICS_PORT}`)
        t.equal(
          env.get('AIRLOCK_METRICS_HOST'),
          '0.0.0.0',
          `${name}: reachable from outside the pod (scrapes, the worker's probes)`,
        )
        t.equal(
          c.ports?.find((p) => p.name === 'metrics')?.containerPort,
          METRICS_PORT,
          `${name}: a container port named metrics`,
        )
        t.equal(
          metadata?.annotations?.['prometheus.io/port'],
          String(METRICS_PORT),
          `${name}: scraped on the metrics port`,
        )
      }
      const api = podTemplate(objects, 'Deployment', 'airlock-api').spec.containers[0]!
      const http = api.ports?.find((p) => p.name === 'http')?.containerPort
      t.equal(String(http), (api.env ?? []).find((e) => e.name === 'PORT')?.value, 'the API listens on its http port')
      t.not(http, METRICS_PORT, 'which is not the metrics port')
      t.not(
        api.env?.find((e) => e.name === 'AIRLOCK_METRICS_ON_API_PORT')?.value,
        'true',
        'the API port does not serve /metrics',
      )

      const apiLabels = podTemplate(objects, 'Deployment', 'airlock-api').metadata?.labels ?? {}
      const selects = (o: Obj) => {
        const selector = (o.spec as V1ServiceSpec).selector
        return selector !== undefined && Object.entries(selector).every(([k, v]) => apiLabels[k] === v)
      }
      const apiServices = objects.filter((o) => o.kind === 'Service' && selects(o))
      t.same(
        apiServices.map((o) => o.metadata?.name),
        ['airlock-api'],
        'one Service selects the API pods',
      )
      for (const o of apiServices) {
        for (const p of (o.spec as V1ServiceSpec).ports ?? [])
          t.ok(
            p.targetPort === 'http' || p.targetPort === http,
            `Service ${o.metadata?.name} port ${p.port} routes to the API port only`,
          )
      }
      t.same(
        objects.filter((o) => o.kind === 'Ingress'),
        [],
        'no Ingress: the operator routes the Service',
      )

      const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && o.metadata?.namespace === 'airlock-system')
      for (const o of policies) {
        for (const rule of (o.spec as V1NetworkPolicySpec).ingress ?? []) {
          const opensMetrics =
            !rule.ports?.length || rule.ports.some((p) => p.port === METRICS_PORT || p.port === 'metrics')
          if (opensMetrics)
            t.ok(
              rule._from?.length,
              `NetworkPolicy ${o.metadata?.name}: the metrics port only from chosen peers, never from everyone`,
            )
        }
      }
      const apiIngress = find(policies, 'NetworkPolicy', 'api-ingress')?.spec as V1NetworkPolicySpec | undefined
      t.same(
        apiIngress?.ingress?.flatMap((r) => r.ports?.map((p) => p.port) ?? []),
        [http],
        'clients may reach the API port, and only it',
      )
      const metricsIngress = find(policies, 'NetworkPolicy', 'metrics-ingress')?.spec as V1NetworkPolicySpec | undefined
      t.same(
        metricsIngress?.ingress?.flatMap((r) => r.ports?.map((p) => p.port) ?? []),
        [METRICS_PORT],
        'Prometheus may reach the metrics port',
      )
    },
  )
}

t.test('airlock.dev/component=sandbox selects what sandboxes need and nothing of airlock-system', async (t) => {
  const { objects } = await renderOverlay('single-node')
  const selected = objects.filter((o) => o.metadata?.labels?.['airlock.dev/component'] === 'sandbox')
  t.same(selected.map((o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`).sort(), [
    'LimitRange/airlock-sandbox/sandbox',
    'Namespace//airlock-sandbox',
    'NetworkPolicy/airlock-sandbox/deny-all',
    'ResourceQuota/airlock-sandbox/sandboxes',
    'RuntimeClass//gvisor',
    'RuntimeClass//runc',
  ])
})

t.test("the worker's RBAC allows what the executor does, in the sandbox namespace only", async (t) => {
  const { objects } = await renderOverlay('self-managed')
  await applyObjects(
    cluster,
    objects.filter((o) =>
      ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(
        o.kind ?? '',
      ),
    ),
  )
  const authz = cluster.kc.makeApiClient(AuthorizationV1Api)
  const user = 'system:serviceaccount:airlock-system:airlock-worker'
  const can = async (
    verb: string,
    resource: string,
    namespace?: string,
    group = '',
    subresource?: string,
    name?: string,
  ) =>
    (
      await authz.createSubjectAccessReview({
        body: {
          spec: {
            user,
            groups: ['system:serviceaccounts', 'system:serviceaccounts:airlock-system'],
            resourceAttributes: { verb, resource, namespace, group, subresource, name },
          },
        },
      })
    ).status?.allowed ?? false
  const allowed: [string, string, string | undefined, string?, string?, string?][] = [
    ['create', 'jobs', 'airlock-sandbox', 'batch'],
    ['watch', 'jobs', 'airlock-sandbox', 'batch'],
    ['delete', 'jobs', 'airlock-sandbox', 'batch'],
    ['create', 'secrets', 'airlock-sandbox'],
    ['watch', 'pods', 'airlock-sandbox'],
    ['get', 'pods', 'airlock-sandbox', '', 'log'],
    ['patch', 'jobs', 'airlock-sandbox', 'batch'],
    ['create', 'pods', 'airlock-sandbox', '', 'attach'],
    ['list', 'events', 'airlock-sandbox'],
    ['list', 'networkpolicies', 'airlock-sandbox', 'networking.k8s.io'],
    ['get', 'namespaces', undefined, '', undefined, 'airlock-sandbox'],
    ['get', 'runtimeclasses', undefined, 'node.k8s.io', undefined, 'gvisor'],
  ]
  for (const [verb, resource, ns, group, sub, name] of allowed)
    t.ok(
      await can(verb, resource, ns, group, sub, name),
      `may ${verb} ${resource}${sub ? `/${sub}` : ''} in ${ns ?? 'the cluster'}`,
    )
  const denied: [string, string, string | undefined, string?, string?, string?][] = [
    ['list', 'secrets', 'airlock-sandbox'],
    ['list', 'events', 'airlock-system'],
    ['get', 'secrets', 'airlock-system'],
    ['create', 'pods', 'airlock-sandbox'],
    ['create', 'pods', 'airlock-sandbox', '', 'exec'],
    ['get', 'pods', 'airlock-sandbox', '', 'exec'],
    ['patch', 'pods', 'airlock-sandbox'],
    ['create', 'pods', 'airlock-system', '', 'attach'],
    ['patch', 'jobs', 'airlock-system', 'batch'],
    ['create', 'jobs', 'default', 'batch'],
    ['delete', 'networkpolicies', 'airlock-sandbox', 'networking.k8s.io'],
    ['get', 'namespaces', undefined, '', undefined, 'kube-system'],
    ['update', 'namespaces', undefined, '', undefined, 'airlock-sandbox'],
  ]
  for (const [verb, resource, ns, group, sub, name] of denied)
    t.notOk(
      await can(verb, resource, ns, group, sub, name),
      `may not ${verb} ${resource}${sub ? `/${sub}` : ''}${name ? ` ${name}` : ''} in ${ns ?? 'the cluster'}`,
    )
})
