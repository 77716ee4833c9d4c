import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { AuthorizationV1Api, type KubernetesObject, type V1Container, type V1PodSpec } from '@kubernetes/client-node'
import { applyObjects, kubectlPath, renderOverlay, startCluster } from './cluster.js'

const run = promisify(execFile)
const OVERLAYS = ['gke', 'self-managed', 'single-node']
const cluster = await startCluster(t)
const kubectl = await kubectlPath()

type Obj = KubernetesObject & { spec?: Record<string, unknown>; data?: Record<string, string> }

function podSpecs(objects: Obj[]): { name: string; spec: V1PodSpec }[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind ?? ''))
    .map((o) => ({ name: `${o.kind}/${o.metadata?.name}`, spec: (o.spec as { template: { spec: V1PodSpec } }).template.spec }))
}

function find(objects: Obj[], kind: string, name: string, namespace?: string): Obj | undefined {
  return objects.find((o) => o.kind === kind && o.metadata?.name === name && (namespace === undefined || o.metadata?.namespace === namespace))
}

for (const overlay of OVERLAYS) {
  t.test(`overlay ${overlay}: the rendered objects are accepted by the real API server (server-side dry run), with no Pod Security warning`, async (t) => {
    const { yaml, objects } = await renderOverlay(overlay)
    // Dry runs need the namespaces to exist; they are created for real.
    await applyObjects(cluster, objects.filter((o) => o.kind === 'Namespace'))
    const file = join(cluster.dir, `${overlay}.yaml`)
    await writeFile(file, yaml)
    const { stdout, stderr } = await run(kubectl, ['--kubeconfig', cluster.kubeconfig, 'apply', '--dry-run=server', '-f', file], { maxBuffer: 16 * 1024 * 1024 })
    t.equal(stdout.split('\n').filter((l) => /\(server dry run\)$/.test(l)).length, objects.length, 'every object accepted')
    t.notMatch(stderr, /PodSecurity/, 'no pod template would violate Pod Security restricted')
  })

  t.test(`overlay ${overlay}: every pod runs non-root, read-only, without privilege escalation or capabilities, with limits and probes`, async (t) => {
    const { objects } = await renderOverlay(overlay)
    const pods = podSpecs(objects)
    t.same(pods.map((p) => p.name).sort(), ['Deployment/airlock-api', 'Deployment/airlock-worker', 'StatefulSet/redis'])
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
    t.equal(pods.find((p) => p.name === 'Deployment/airlock-api')!.spec.automountServiceAccountToken, false, 'the API gets no Kubernetes credentials')
    t.ok(find(objects, 'PodDisruptionBudget', 'airlock-api') && find(objects, 'PodDisruptionBudget', 'airlock-worker'), 'PodDisruptionBudgets')
    t.ok(find(objects, 'HorizontalPodAutoscaler', 'airlock-api'), 'the API scales horizontally')
  })

  t.test(`overlay ${overlay}: the sandbox namespace enforces restricted, denies all traffic and has a quota and limits`, async (t) => {
    const { objects } = await renderOverlay(overlay)
    const ns = find(objects, 'Namespace', 'airlock-sandbox')
    t.equal(ns?.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted')
    const denyAll = objects.filter((o) => o.kind === 'NetworkPolicy' && o.metadata?.namespace === 'airlock-sandbox')
    t.same(denyAll.map((p) => (p as Obj).spec), [{ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }], 'exactly one policy there, and it allows nothing')
    t.ok(find(objects, 'ResourceQuota', 'sandboxes', 'airlock-sandbox'), 'ResourceQuota')
    t.ok(find(objects, 'LimitRange', 'sandbox', 'airlock-sandbox'), 'LimitRange')
    t.equal(find(objects, 'ConfigMap', 'airlock-config')?.data?.AIRLOCK_EXECUTOR, 'kubernetes')
    const runtimeClass = find(objects, 'RuntimeClass', 'gvisor') as (Obj & { handler?: string; overhead?: unknown; scheduling?: { nodeSelector?: object; tolerations?: unknown[] } }) | undefined
    const runc = find(objects, 'RuntimeClass', 'runc') as (Obj & { handler?: string }) | undefined
    if (overlay === 'single-node') t.equal(runc?.handler, 'runc', 'the runc comparison RuntimeClass, for the load test on one machine')
    else t.equal(runc, undefined, 'no RuntimeClass without gVisor in a cluster for tenants')
    if (overlay !== 'gke') {
      t.equal(runtimeClass?.handler, 'runsc')
      t.ok(runtimeClass?.overhead, 'pod overhead')
      t.ok(runtimeClass?.scheduling?.nodeSelector && runtimeClass.scheduling.tolerations?.length, 'placed on the gVisor pool')
    } else {
      t.equal(runtimeClass, undefined, 'GKE brings its own gvisor RuntimeClass')
    }
  })
}

t.test('airlock.dev/component=sandbox selects what sandboxes need and nothing of airlock-system', async (t) => {
  const { objects } = await renderOverlay('single-node')
  const selected = objects.filter((o) => o.metadata?.labels?.['airlock.dev/component'] === 'sandbox')
  t.same(
    selected.map((o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`).sort(),
    ['LimitRange/airlock-sandbox/sandbox', 'Namespace//airlock-sandbox', 'NetworkPolicy/airlock-sandbox/deny-all', 'ResourceQuota/airlock-sandbox/sandboxes', 'RuntimeClass//gvisor', 'RuntimeClass//runc'],
  )
})

t.test("the worker's RBAC allows what the executor does, in the sandbox namespace only", async (t) => {
  const { objects } = await renderOverlay('self-managed')
  await applyObjects(cluster, objects.filter((o) => ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind ?? '')))
  const authz = cluster.kc.makeApiClient(AuthorizationV1Api)
  const user = 'system:serviceaccount:airlock-system:airlock-worker'
  const can = async (verb: string, resource: string, namespace?: string, group = '', subresource?: string, name?: string) =>
    (await authz.createSubjectAccessReview({ body: { spec: { user, groups: ['system:serviceaccounts', 'system:serviceaccounts:airlock-system'], resourceAttributes: { verb, resource, namespace, group, subresource, name } } } })).status?.allowed ?? false
  const allowed: [string, string, string | undefined, string?, string?, string?][] = [
    ['create', 'jobs', 'airlock-sandbox', 'batch'],
    ['watch', 'jobs', 'airlock-sandbox', 'batch'],
    ['delete', 'jobs', 'airlock-sandbox', 'batch'],
    ['create', 'secrets', 'airlock-sandbox'],
    ['watch', 'pods', 'airlock-sandbox'],
    ['get', 'pods', 'airlock-sandbox', '', 'log'],
    ['list', 'events', 'airlock-sandbox'],
    ['list', 'networkpolicies', 'airlock-sandbox', 'networking.k8s.io'],
    ['get', 'namespaces', undefined, '', undefined, 'airlock-sandbox'],
    ['get', 'runtimeclasses', undefined, 'node.k8s.io', undefined, 'gvisor'],
  ]
  for (const [verb, resource, ns, group, sub, name] of allowed) t.ok(await can(verb, resource, ns, group, sub, name), `may ${verb} ${resource}${sub ? `/${sub}` : ''} in ${ns ?? 'the cluster'}`)
  const denied: [string, string, string | undefined, string?, string?, string?][] = [
    ['list', 'secrets', 'airlock-sandbox'],
    ['list', 'events', 'airlock-system'],
    ['get', 'secrets', 'airlock-system'],
    ['create', 'pods', 'airlock-sandbox'],
    ['create', 'pods', 'airlock-sandbox', '', 'exec'],
    ['create', 'jobs', 'default', 'batch'],
    ['delete', 'networkpolicies', 'airlock-sandbox', 'networking.k8s.io'],
    ['get', 'namespaces', undefined, '', undefined, 'kube-system'],
    ['update', 'namespaces', undefined, '', undefined, 'airlock-sandbox'],
  ]
  for (const [verb, resource, ns, group, sub, name] of denied) t.notOk(await can(verb, resource, ns, group, sub, name), `may not ${verb} ${resource}${sub ? `/${sub}` : ''}${name ? ` ${name}` : ''} in ${ns ?? 'the cluster'}`)
})
