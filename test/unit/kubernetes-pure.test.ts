import t from 'tap'
import type { V1Job, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node'
import { ConfigError, parseImageRefs } from '../../core/config.js'
import type { JobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { buildJob, buildSecret, jobLabels, kubeJobName, secretBytes, tenantLabel, type ManifestInput } from '../../worker/executors/kubernetes/job-manifests.js'
import { namespaceProblems, type SafetyInput } from '../../worker/executors/kubernetes/namespace-safety.js'
import { isTransientRefusal, observe } from '../../worker/executors/kubernetes/pod-state.js'
import { CAP_HELPER_PROCESSES } from '../../worker/executors/sandbox-process.js'

const spec: JobSpec = {
  runtime: 'python',
  files: [{ path: 'main.py', content: 'print(1)' }, { path: 'lib/a.py', content: 'A = 1' }],
  entrypoint: 'main.py',
  args: ['x'],
  stdin: 'in',
  env: { FOO: 'bar' },
  limits: { timeoutMs: 2500, memoryMb: 256, cpus: 1.5, pids: 40, outputBytes: 100 },
}

const input: ManifestInput = {
  jobId: 'job_0123abcd',
  tenant: 'alice',
  spec,
  runtime: findRuntime('python')!,
  namespace: 'airlock-sandbox',
  runtimeClassName: 'gvisor',
  image: `r/default@sha256:${'b'.repeat(64)}`,
  workspaceMb: 64,
  startAllowanceMs: 60_000,
  ttlAfterFinishedSeconds: 600,
}

t.test('the Job name comes from the job id, so a second attempt finds the first one', async (t) => {
  t.equal(kubeJobName('job_0123abcd'), 'airlock-job-0123abcd')
  t.equal(kubeJobName('job_0123abcd'), kubeJobName('job_0123abcd'))
  t.ok(kubeJobName(`job_${'f'.repeat(80)}`).length <= 63, 'a valid label value')
})

t.test('tenant labels: the name when valid, a stable hash otherwise', async (t) => {
  t.equal(tenantLabel('alice'), 'alice')
  const odd = tenantLabel('team-a.')
  t.match(odd, /^h-[0-9a-f]{40}$/)
  t.equal(tenantLabel('team-a.'), odd)
})

t.test('job spec -> Job: gVisor, no token, non-root, read-only root, no capabilities, requests = limits', async (t) => {
  const job = buildJob(input)
  const pod = job.spec!.template.spec!
  const c = pod.containers[0]!
  t.equal(job.metadata?.name, 'airlock-job-0123abcd')
  t.same(job.metadata?.labels, jobLabels('job_0123abcd', 'alice'))
  t.equal(job.spec?.backoffLimit, 0)
  t.equal(pod.restartPolicy, 'Never')
  t.equal(job.spec?.activeDeadlineSeconds, 63, 'timeout plus the start allowance, rounded up')
  t.equal(job.spec?.ttlSecondsAfterFinished, 600)
  t.equal(pod.runtimeClassName, 'gvisor')
  t.equal(pod.automountServiceAccountToken, false)
  t.equal(pod.enableServiceLinks, false)
  t.notOk(pod.hostNetwork || pod.hostPID || pod.hostIPC)
  t.same(pod.securityContext, { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } })
  t.same(c.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } })
  t.same(c.resources?.limits, { cpu: '1500m', memory: '256Mi', 'ephemeral-storage': '64Mi' }, 'disk only for the container log')
  t.same(c.resources?.requests, c.resources?.limits)
  const big = buildJob({ ...input, spec: { ...spec, limits: { ...spec.limits, outputBytes: 100 * 1024 * 1024 } } }).spec?.template.spec?.containers[0]
  t.equal(big?.resources?.limits?.['ephemeral-storage'], '217Mi', 'room in the log for both streams at a large cap')
  t.equal(c.image, input.image)
  t.same(pod.volumes?.filter((v) => v.emptyDir).map((v) => v.emptyDir), [{ medium: 'Memory', sizeLimit: '64Mi' }, { medium: 'Memory', sizeLimit: '64Mi' }], 'tmpfs of a fixed size, not an eviction threshold')
  t.same(c.command?.slice(3), ['airlock', 'python3', 'main.py', 'x'])
  const names = (c.env ?? []).map((e) => e.name)
  t.same(names.sort(), ['FOO', 'HOME', 'LANG', 'PATH', 'PYTHONUNBUFFERED'])
  const script = c.command?.[2] ?? ''
  t.ok(
    script.includes(`(ulimit -p ${40 + CAP_HELPER_PROCESSES} && exec env -i ${(c.env ?? []).map((e) => `"${e.name}=$${e.name}"`).join(' ')} "$@" < /airlock/job/stdin)`),
    'the program sees only the job\'s variables, not the ones the kubelet adds, under the process limit (its own plus the launcher\'s helpers)',
  )
  t.ok(script.startsWith('cp -R /airlock/job/files/. /workspace/'), 'the files are copied to the workspace first')
  t.equal(script.match(/head -c 101;/g)?.length, 2, 'stdout and stderr each capped at outputBytes + 1 in the sandbox, not on the node\'s disk')
  t.same(pod.volumes?.[0]?.secret?.items, [{ key: 'stdin', path: 'stdin' }, { key: 'file-0', path: 'files/main.py' }, { key: 'file-1', path: 'files/lib/a.py' }])
  t.ok(c.env?.some((e) => e.name === 'FOO' && e.value === 'bar'))
  t.equal(buildJob({ ...input, spec: { ...spec, isolation: 'runc' } }).spec?.template.spec?.runtimeClassName, 'runc', 'the benchmark comparison runtime')
})

t.test('job spec -> Secret: files and stdin, immutable, labelled', async (t) => {
  const secret = buildSecret(input)
  t.same(secret.stringData, { stdin: 'in', 'file-0': 'print(1)', 'file-1': 'A = 1' })
  t.equal(secret.immutable, true)
  t.equal(secret.metadata?.name, kubeJobName(input.jobId))
  t.equal(secretBytes(spec), 2 + 8 + 5)
})

const running = (startedAt: string): V1Pod => ({ status: { phase: 'Running', containerStatuses: [{ name: 'job', image: 'i', imageID: '', ready: true, restartCount: 0, state: { running: { startedAt: new Date(startedAt) } } }] } })
const terminated = (exitCode: number, reason: string): V1Pod => ({
  status: { phase: 'Failed', containerStatuses: [{ name: 'job', image: 'i', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason, startedAt: new Date(1000), finishedAt: new Date(3000) } } }] },
})
const waiting = (reason: string): V1Pod => ({ status: { phase: 'Pending', containerStatuses: [{ name: 'job', image: 'img', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message: 'm' } } }] } })
const failedJob = (reason: string): V1Job => ({ status: { conditions: [{ type: 'Failed', status: 'True', reason, message: 'msg' }] } })
const limits = { timeoutMs: 1000, memoryMb: 64 }

t.test('pod and Job state -> what the executor does', async (t) => {
  t.same(observe(undefined, undefined, limits), { kind: 'pending' })
  t.match(observe(undefined, running('2026-01-01T00:00:00Z'), limits), { kind: 'running', startedAt: Date.parse('2026-01-01T00:00:00Z') })
  t.match(observe(undefined, terminated(0, 'Completed'), limits), { kind: 'ended', end: { status: 'succeeded', exitCode: 0 }, startedAt: 1000, finishedAt: 3000 })
  t.match(observe(undefined, terminated(2, 'Error'), limits), { kind: 'ended', end: { status: 'failed', exitCode: 2 } })
  t.match(observe(undefined, terminated(137, 'Error'), limits), { kind: 'ended', end: { status: 'failed', signal: 'SIGKILL' } })
  t.match(observe(undefined, terminated(137, 'OOMKilled'), limits), { kind: 'ended', end: { status: 'oom' } }, 'OOMKilled wins over the SIGKILL')
  t.match(observe(failedJob('DeadlineExceeded'), terminated(137, 'Error'), limits), { kind: 'ended', end: { status: 'timeout' } }, 'the deadline wins')
  t.match(observe(undefined, waiting('ImagePullBackOff'), limits), { kind: 'cannot-start', reason: /image img could not be pulled \(ImagePullBackOff\): m/ })
  t.match(observe(undefined, waiting('CreateContainerConfigError'), limits), { kind: 'cannot-start', reason: /could not be created/ })
  t.same(observe(undefined, waiting('ContainerCreating'), limits), { kind: 'pending' }, 'ordinary waiting is pending')
  t.match(observe(undefined, { status: { phase: 'Failed', reason: 'Evicted', message: 'disk' } }, limits), { kind: 'cannot-start', reason: /Evicted/ })
  t.same(observe(undefined, { status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no fit' }] } }, limits), { kind: 'unschedulable', message: 'no fit' })
  t.match(observe(failedJob('BackoffLimitExceeded'), undefined, limits), { kind: 'cannot-start', reason: /BackoffLimitExceeded/ })
})

const safe: SafetyInput = {
  namespaceName: 'ns',
  namespace: { metadata: { name: 'ns', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
  runtimeClassName: 'gvisor',
  runtimeClass: { handler: 'runsc', metadata: { name: 'gvisor' } },
  networkPolicies: [{ metadata: { name: 'deny-all' }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } }],
  podLabels: jobLabels('job_x', 'alice'),
}
const policy = (spec: V1NetworkPolicy['spec'], name = 'p'): V1NetworkPolicy => ({ metadata: { name }, spec })

t.test('namespace safety: every missing guarantee is named', async (t) => {
  t.same(namespaceProblems(safe), [])
  t.match(namespaceProblems({ ...safe, namespace: undefined }), [/namespace ns does not exist/])
  t.match(namespaceProblems({ ...safe, namespace: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } } }), [/"baseline"/])
  t.match(namespaceProblems({ ...safe, runtimeClass: undefined }), [/RuntimeClass gvisor does not exist/])
  t.match(namespaceProblems({ ...safe, runtimeClass: { handler: 'runc' } }), [/handler "runc", not gVisor \(runsc or gvisor\)/])
  t.match(namespaceProblems({ ...safe, networkPolicies: [] }), [/denies all Ingress and Egress/])
  t.match(namespaceProblems({ ...safe, networkPolicies: [policy({ podSelector: {}, policyTypes: ['Ingress'] })] }), [/denies all Egress/])
  t.match(namespaceProblems({ ...safe, networkPolicies: [policy({ podSelector: { matchLabels: { app: 'other' } }, policyTypes: ['Ingress', 'Egress'] })] }), [/denies all/], 'a policy that selects other pods does not count')
  t.same(namespaceProblems({ ...safe, networkPolicies: [policy({ podSelector: { matchExpressions: [{ key: 'airlock.dev/sandbox', operator: 'In', values: ['true'] }] }, policyTypes: ['Ingress', 'Egress'] })] }), [])
  t.match(
    namespaceProblems({ ...safe, networkPolicies: [...safe.networkPolicies, policy({ podSelector: {}, policyTypes: ['Egress'], egress: [{}] }, 'allow-all')] }),
    [/NetworkPolicy allow-all in ns allows traffic/],
    'an allowing policy beside deny-all opens it again',
  )
  t.same(namespaceProblems({ ...safe, networkPolicies: [policy({ podSelector: { matchExpressions: [{ key: 'x', operator: 'Exists' }] }, egress: [{}] })] }).length, 1, 'a policy not selecting sandbox pods is irrelevant')
})

t.test('image references must be pinned by digest', async (t) => {
  t.same([...parseImageRefs(`default=reg/a@sha256:${'c'.repeat(64)}`)], [['default', `reg/a@sha256:${'c'.repeat(64)}`]])
  t.throws(() => parseImageRefs('default=reg/a:latest'), ConfigError)
  t.throws(() => parseImageRefs('nonsense'), ConfigError)
  t.same([...parseImageRefs('')], [])
})

t.test('a full quota may clear; a LimitRange or Pod Security refusal does not', async (t) => {
  t.ok(isTransientRefusal('pods "airlock-job-1-x" is forbidden: exceeded quota: sandboxes, requested: pods=1, used: pods=200, limited: pods=200'))
  t.notOk(isTransientRefusal('pods "airlock-job-1-x" is forbidden: maximum memory usage per Container is 8Gi, but limit is 16Gi'))
  t.notOk(isTransientRefusal('pods "airlock-job-1-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'))
})
