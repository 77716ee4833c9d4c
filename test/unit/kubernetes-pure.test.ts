import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { SANDBOX_SECCOMP_PROFILE_NAME } from '../../worker/executors/sandbox-seccomp.js'
import type { V1Job, V1NetworkPolicy, V1Pod, V1Secret } from '@kubernetes/client-node'
import { ConfigError, parseImageRefs } from '../../core/config.js'
import type { JobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import {
  buildJob,
  buildSecret,
  buildWarmJob,
  jobLabels,
  kubeJobName,
  kubeLiteral,
  LABEL_JOB,
  LABEL_WARM,
  secretBytes,
  tenantLabel,
  type ManifestInput,
} from '../../worker/executors/kubernetes/job-manifests.js'
import { LauncherReportFilter } from '../../worker/executors/kubernetes/launcher-report.js'
import { namespaceProblems, type SafetyInput } from '../../worker/executors/kubernetes/namespace-safety.js'
import { isTransientRefusal, observe, podDisruption } from '../../worker/executors/kubernetes/pod-state.js'
import {
  CAP_HELPER_PROCESSES,
  JOB_FILES_MOUNT,
  NO_SECCOMP_EXIT,
  NO_SECCOMP_MESSAGE,
  NO_SECCOMP_REASON,
  warmStreamLauncherArgv,
  WORKSPACE,
} from '../../worker/executors/sandbox-process.js'

const spec: JobSpec = {
  runtime: 'python',
  files: [
    { path: 'main.py', content: 'print(1)' },
    { path: 'lib/a.py', content: 'A = 1' },
  ],
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
  t.same(pod.securityContext, {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    seccompProfile: { type: 'Localhost', localhostProfile: SANDBOX_SECCOMP_PROFILE_NAME },
  })
  t.same(c.securityContext, {
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
  })
  t.same(
    c.resources?.limits,
    { cpu: '1500m', memory: '256Mi', 'ephemeral-storage': '64Mi' },
    'disk only for the container log',
  )
  t.same(c.resources?.requests, c.resources?.limits)
  const big = buildJob({ ...input, spec: { ...spec, limits: { ...spec.limits, outputBytes: 100 * 1024 * 1024 } } }).spec
    ?.template.spec?.containers[0]
  t.equal(big?.resources?.limits?.['ephemeral-storage'], '217Mi', 'room in the log for both streams at a large cap')
  t.equal(c.image, input.image)
  t.same(
    pod.volumes?.filter((v) => v.emptyDir).map((v) => v.emptyDir),
    [
      { medium: 'Memory', sizeLimit: '64Mi' },
      { medium: 'Memory', sizeLimit: '64Mi' },
    ],
    'tmpfs of a fixed size, not an eviction threshold',
  )
  t.same(c.command?.slice(3), ['airlock', 'python3', 'main.py', 'x'])
  t.same(
    c.env,
    [
      { name: 'PATH', value: '/usr/local/bin:/usr/bin:/bin' },
      { name: 'HOME', value: '/workspace' },
    ],
    "the container's own environment is only what the launcher needs",
  )
  // As the kubelet passes it on: every $ is doubled in the manifest (kubeLiteral).
  const script = (c.command?.[2] ?? '').replaceAll('$$', '$')
  t.ok(
    script.includes(`(ulimit -p ${40 + CAP_HELPER_PROCESSES} && exec env -i -- "$@" < /airlock/job/stdin)`),
    "the program sees only the job's variables, not the ones the kubelet adds, under the process limit (its own plus the launcher's helpers)",
  )
  t.ok(
    script.indexOf('cp -R /airlock/job/files/. /workspace/') < script.indexOf('mkfifo'),
    'the files are copied to the workspace first',
  )
  t.equal(
    script.match(/head -c 101;/g)?.length,
    2,
    "stdout and stderr each capped at outputBytes + 1 in the sandbox, not on the node's disk",
  )
  t.same(pod.volumes?.[0]?.secret?.items, [
    { key: 'stdin', path: 'stdin' },
    { key: 'file-0', path: 'files/main.py' },
    { key: 'file-1', path: 'files/lib/a.py' },
    ...['0', '1', '2', '3', '4'].map((i) => ({ key: `env-${i}`, path: `env/${i}` })),
  ])
  t.notOk(JSON.stringify(job).includes('bar'), "the job's variables are not in the Job")
  t.equal(
    buildJob({ ...input, spec: { ...spec, isolation: 'runc' } }).spec?.template.spec?.runtimeClassName,
    'runc',
    'the benchmark comparison runtime',
  )
})

t.test('job spec -> Secret: files and stdin, immutable, labelled', async (t) => {
  const secret = buildSecret(input)
  t.same(secret.stringData, {
    stdin: 'in',
    'file-0': 'print(1)',
    'file-1': 'A = 1',
    'env-0': 'FOO=bar',
    'env-1': 'PATH=/usr/local/bin:/usr/bin:/bin',
    'env-2': 'HOME=/workspace',
    'env-3': 'LANG=C.UTF-8',
    'env-4': 'PYTHONUNBUFFERED=1',
  })
  t.equal(secret.immutable, true)
  t.equal(secret.metadata?.name, kubeJobName(input.jobId))
  t.equal(
    secretBytes(spec),
    Object.values(secret.stringData ?? {}).reduce((n, v) => n + Buffer.byteLength(v), 0),
    'what the Secret holds, env included',
  )
})

/** The kubelet's $(NAME) expansion of command and env values (k8s third_party/forked/golang/expansion). */
function kubeletExpand(s: string, vars: Record<string, string>): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '$' || i + 1 === s.length) {
      out += s[i]
      continue
    }
    const next = s[i + 1]
    const close = next === '(' ? s.indexOf(')', i + 2) : -1
    if (next === '$') out += '$'
    else if (close >= 0) out += vars[s.slice(i + 2, close)] ?? s.slice(i, close + 1)
    else out += `$${next}`
    i = close >= 0 ? close : i + 1
  }
  return out
}

/**
 * Runs a Job's launcher as the kubelet would start it, on this machine's dash: the
 * Secret laid out by its volume items, the command and env expanded, the kubelet's own
 * variables added, the sandbox's paths moved under a temporary directory.
 */
async function runLauncher(
  t: { teardown(fn: () => unknown): void },
  job: V1Job,
  secret: V1Secret,
  stdin = '',
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const root = await mkdtemp(join(tmpdir(), 'airlock-kube-launcher-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await mkdir(join(root, 'workspace'))
  const pod = job.spec!.template.spec!
  for (const item of pod.volumes![0]!.secret!.items!) {
    await mkdir(dirname(join(root, 'job', item.path)), { recursive: true })
    await writeFile(join(root, 'job', item.path), secret.stringData![item.key]!)
  }
  const c = pod.containers[0]!
  const containerEnv = Object.fromEntries((c.env ?? []).map((e) => [e.name, kubeletExpand(e.value ?? '', {})]))
  const command = c.command!.map((part) => kubeletExpand(part, containerEnv))
  // RLIMIT_NPROC is asserted on the script's text; here it would count this machine's
  // processes. The seccomp check reads a stand-in status that says "filtered": this
  // machine's shell is not under the sandbox's filter (test/unit/seccomp-profile.test.ts
  // runs the check against the real thing).
  await writeFile(join(root, 'status'), 'Name:\tsh\nSeccomp:\t2\n')
  const script = command[2]!
    .replaceAll(`${JOB_FILES_MOUNT}/`, `${root}/job/`)
    .replaceAll(`${WORKSPACE}/`, `${root}/workspace/`)
    .replace(/ulimit -p \d+ && /, '')
    .replace('</proc/self/status', `<${root}/status`)
  const r = spawnSync(command[0]!, [command[1]!, script, ...command.slice(3)], {
    cwd: join(root, 'workspace'),
    env: { ...containerEnv, KUBERNETES_SERVICE_HOST: '127.0.0.1', HOSTNAME: 'pod' },
    maxBuffer: 1 << 20,
    input: stdin,
  })
  // As the executor reads the log: the program's bytes, without the launcher's report lines.
  const program = (b: Buffer) => {
    const out: Buffer[] = []
    const filter = new LauncherReportFilter(
      (chunk) => out.push(chunk),
      () => undefined,
    )
    filter.write(b)
    filter.flush()
    return Buffer.concat(out).toString()
  }
  return { status: r.status, stdout: program(r.stdout), stderr: program(r.stderr) }
}

t.test('a hostile env name or value never becomes shell text, and reaches the program exactly', async (t) => {
  const hostile = {
    'X"; cat /dev/zero >&2; : "': 'v',
    'Y$(echo INJECTED >&2)': '`echo INJECTED >&2`',
    'Z\necho INJECTED >&2\n': '$(echo INJECTED >&2); "\'\\',
    SAFE: 'a value\nwith "quotes", $(HOME), $$, `ticks`, a trailing newline\n\n',
    EMPTY: '',
  }
  const args = ['$(HOME)', '$$', 'a b', '$']
  // Node prints what it was given: its argv after `-e CODE` and its environment.
  const runtime = {
    ...findRuntime('node')!,
    command: (_entrypoint: string, a: readonly string[]) => [
      'node',
      '-e',
      'process.stdout.write(JSON.stringify({ argv: process.argv.slice(1), env: process.env }))',
      ...a,
    ],
  }
  const hostileInput: ManifestInput = {
    ...input,
    runtime,
    spec: { ...spec, env: hostile, args, limits: { ...spec.limits, outputBytes: 1 << 20 } },
  }
  const job = buildJob(hostileInput)
  const secret = buildSecret(hostileInput)
  const c = job.spec!.template.spec!.containers[0]!
  const script = c.command![2]!
  t.match(
    script.replaceAll('$$', '$'),
    /^s=; while read -r k v; do \[ "\$k" = Seccomp: \] && s=\$v; done <\/proc\/self\/status; \[ "\$s" = 2 \] \|\| \{ m='[^']+'; echo "\$m" >&2; \[ -w \/dev\/termination-log \] && echo "\$m" >\/dev\/termination-log; exit 126; \}\n/,
    'the launcher checks for its seccomp filter before anything else',
  )
  for (const [name, value] of Object.entries(hostile)) {
    t.notOk(script.includes(name), `the name ${JSON.stringify(name)} is not in the launcher's script`)
    if (value.length > 1) t.notOk(script.includes(value), `nor the value ${JSON.stringify(value)}`)
    t.notOk(JSON.stringify(c.command).includes(JSON.stringify(name).slice(1, -1)), 'nor anywhere in the command')
    t.notOk(JSON.stringify(c.env).includes(JSON.stringify(name).slice(1, -1)), "nor in the container's environment")
    t.ok(Object.values(secret.stringData!).includes(`${name}=${value}`), 'it is data in the Secret')
  }

  const r = await runLauncher(t, job, secret)
  t.equal(r.status, 0, r.stderr)
  t.notMatch(r.stderr, /INJECTED/, 'nothing the job sent ran as shell')
  const seen = JSON.parse(r.stdout) as { argv: string[]; env: Record<string, string> }
  t.same(seen.argv, args, 'arguments arrive as sent, $ and $(NAME) included (the kubelet would expand them)')
  t.same(
    seen.env,
    { ...hostile, PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/workspace', LANG: 'C.UTF-8', PYTHONUNBUFFERED: '1' },
    "exactly the job's variables and the sandbox's: none of the kubelet's",
  )
})

t.test(
  "with waitForGo a cold pod's launcher runs nothing until the worker's go line, and then the job exactly as without it",
  async (t) => {
    const runtime = { ...findRuntime('bash')!, command: () => ['sh', '-c', 'echo ran; cat; echo err >&2; exit 3'] }
    const goInput: ManifestInput = { ...input, runtime, spec: { ...spec, stdin: 'the job stdin\n' }, waitForGo: true }
    const job = buildJob(goInput)
    const secret = buildSecret(goInput)
    const c = job.spec!.template.spec!.containers[0]!
    t.match(
      c,
      { stdin: true, stdinOnce: false },
      'stdin open for the attach, past one attach (an adopting worker sends go again)',
    )
    t.notOk(buildJob(input).spec!.template.spec!.containers[0]!.stdin, 'without it the container has no stdin')
    const script = c.command![2]!.replaceAll('$$', '$')
    t.ok(
      script.indexOf('read -r go') > script.indexOf('Seccomp'),
      'the seccomp check comes first, then the wait for go',
    )
    const none = await runLauncher(t, job, secret, '')
    t.equal(none.status, 125, 'stdin closed without a go: exit 125')
    t.equal(none.stdout + none.stderr, '', 'having run nothing')
    const wrong = await runLauncher(t, job, secret, 'echo hi\n')
    t.equal(wrong.status, 125, 'anything but the go line runs nothing either')
    const go = await runLauncher(t, job, secret, 'go\ngo\nmore\n')
    t.equal(go.status, 3, "after go: the program's status")
    t.equal(go.stdout, 'ran\nthe job stdin\n', "and its stdin is the job's, not what else came through the attach")
    t.equal(go.stderr, 'err\n')
  },
)

t.test('every $ of the command is doubled for the kubelet, which reads $$ as $', async (t) => {
  for (const s of ['$(HOME)', '$$(HOME)', 'a$', '$', '$$$', 'no dollar', '$(', '$x'])
    t.equal(kubeletExpand(kubeLiteral(s), { HOME: '/workspace', x: 'X' }), s, JSON.stringify(s))
  t.equal(kubeletExpand('$(HOME)/$$(HOME)', { HOME: '/w' }), '/w/$(HOME)', 'the expansion the escaping undoes')
})

const running = (startedAt: string): V1Pod => ({
  status: {
    phase: 'Running',
    containerStatuses: [
      {
        name: 'job',
        image: 'i',
        imageID: '',
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: new Date(startedAt) } },
      },
    ],
  },
})
const terminated = (exitCode: number, reason: string): V1Pod => ({
  status: {
    phase: 'Failed',
    containerStatuses: [
      {
        name: 'job',
        image: 'i',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode, reason, startedAt: new Date(1000), finishedAt: new Date(3000) } },
      },
    ],
  },
})
const waiting = (reason: string): V1Pod => ({
  status: {
    phase: 'Pending',
    containerStatuses: [
      {
        name: 'job',
        image: 'img',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason, message: 'm' } },
      },
    ],
  },
})
const failedJob = (reason: string): V1Job => ({
  status: { conditions: [{ type: 'Failed', status: 'True', reason, message: 'msg' }] },
})
const limits = { timeoutMs: 1000, memoryMb: 64 }

t.test('pod and Job state -> what the executor does', async (t) => {
  t.same(observe(undefined, undefined, limits), { kind: 'pending' })
  t.match(observe(undefined, running('2026-01-01T00:00:00Z'), limits), {
    kind: 'running',
    startedAt: Date.parse('2026-01-01T00:00:00Z'),
  })
  t.match(observe(undefined, terminated(0, 'Completed'), limits), {
    kind: 'ended',
    end: { status: 'succeeded', exitCode: 0 },
    startedAt: 1000,
    finishedAt: 3000,
  })
  t.match(observe(undefined, terminated(2, 'Error'), limits), { kind: 'ended', end: { status: 'failed', exitCode: 2 } })
  t.match(observe(undefined, terminated(137, 'Error'), limits), {
    kind: 'ended',
    end: { status: 'failed', signal: 'SIGKILL' },
  })
  t.match(
    observe(undefined, terminated(137, 'OOMKilled'), limits),
    { kind: 'ended', end: { status: 'oom' } },
    'OOMKilled wins over the SIGKILL',
  )
  t.match(
    observe(failedJob('DeadlineExceeded'), terminated(137, 'Error'), limits),
    { kind: 'ended', end: { status: 'timeout' } },
    'the deadline wins',
  )
  const refused = terminated(NO_SECCOMP_EXIT, 'Error')
  refused.status!.containerStatuses![0]!.state!.terminated!.message = `${NO_SECCOMP_MESSAGE}\n`
  t.match(
    observe(undefined, refused, limits),
    { kind: 'ended', end: { status: 'error', exitCode: null, reason: NO_SECCOMP_REASON } },
    "a launcher that found no seccomp filter: the node's error, not the program's",
  )
  t.match(
    observe(undefined, terminated(NO_SECCOMP_EXIT, 'Error'), limits),
    { kind: 'ended', end: { status: 'failed', exitCode: 126 } },
    "exit 126 without those words is the program's own",
  )
  t.match(observe(undefined, waiting('ImagePullBackOff'), limits), {
    kind: 'cannot-start',
    reason: /image img could not be pulled \(ImagePullBackOff\): m/,
  })
  t.match(observe(undefined, waiting('CreateContainerConfigError'), limits), {
    kind: 'cannot-start',
    reason: /could not be created/,
  })
  t.same(observe(undefined, waiting('ContainerCreating'), limits), { kind: 'pending' }, 'ordinary waiting is pending')
  t.match(observe(undefined, { status: { phase: 'Failed', reason: 'Evicted', message: 'disk' } }, limits), {
    kind: 'cannot-start',
    reason: /Evicted/,
  })
  t.same(
    observe(
      undefined,
      {
        status: {
          phase: 'Pending',
          conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no fit' }],
        },
      },
      limits,
    ),
    { kind: 'unschedulable', message: 'no fit' },
  )
  t.match(observe(failedJob('BackoffLimitExceeded'), undefined, limits), {
    kind: 'cannot-start',
    reason: /BackoffLimitExceeded/,
  })
})

t.test('a pod the cluster ended is an error of the host, not the program failing', async (t) => {
  const disrupted = (
    exitCode: number,
    condition: { reason: string; message: string } | undefined,
    status: Partial<NonNullable<V1Pod['status']>> = {},
  ): V1Pod => {
    const pod = terminated(exitCode, 'Error')
    pod.status = {
      ...pod.status,
      ...status,
      conditions: condition ? [{ type: 'DisruptionTarget', status: 'True', ...condition }] : [],
    }
    return pod
  }
  const evicted = disrupted(
    137,
    { reason: 'TerminationByKubelet', message: 'The node was low on resource: memory.' },
    { reason: 'Evicted', message: 'The node was low on resource: memory.' },
  )
  t.match(observe(undefined, evicted, limits), {
    kind: 'ended',
    end: {
      status: 'error',
      exitCode: null,
      signal: 'SIGKILL',
      reason:
        /^the host stopped the sandbox: the cluster ended its pod \(TerminationByKubelet\): The node was low on resource: memory\.$/,
    },
  })
  t.match(observe(undefined, disrupted(143, { reason: 'PreemptionByScheduler', message: 'preempted' }), limits), {
    kind: 'ended',
    end: { status: 'error', reason: /PreemptionByScheduler/ },
  })
  t.match(
    observe(undefined, disrupted(2, undefined, { reason: 'Evicted', message: 'disk' }), limits),
    { kind: 'ended', end: { status: 'error', exitCode: null, reason: /\(Evicted\): disk/ } },
    'an eviction on a cluster without DisruptionTarget',
  )
  t.match(
    observe(undefined, disrupted(0, { reason: 'DeletionByTaintManager', message: 'm' }), limits),
    { kind: 'ended', end: { status: 'succeeded' } },
    'a program that ended first succeeded',
  )
  const oom = terminated(137, 'OOMKilled')
  oom.status!.conditions = [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: 'm' }]
  t.match(
    observe(undefined, oom, limits),
    { kind: 'ended', end: { status: 'oom' } },
    "the job's own memory limit still wins",
  )
  t.equal(podDisruption(terminated(1, 'Error')), null, 'a pod left alone')
  t.equal(podDisruption({ status: { conditions: [{ type: 'DisruptionTarget', status: 'False' }] } }), null)
})

t.test("the node's paths do not reach a job's reason", async (t) => {
  const pod = waiting('RunContainerError')
  pod.status!.containerStatuses![0]!.state!.waiting!.message =
    'failed to create containerd task: OCI runtime create failed: open /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/log.json: no such file; mount "/var/lib/kubelet/pods/123/volumes/x" failed'
  const seen = observe(undefined, pod, limits)
  t.match(seen, { kind: 'cannot-start', reason: /RunContainerError.*OCI runtime create failed/ })
  t.notMatch((seen as { reason: string }).reason, /\/run\/|\/var\/lib|kubelet\/pods/)
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
  t.match(
    namespaceProblems({
      ...safe,
      namespace: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } },
    }),
    [/"baseline"/],
  )
  t.match(namespaceProblems({ ...safe, runtimeClass: undefined }), [/RuntimeClass gvisor does not exist/])
  t.match(namespaceProblems({ ...safe, runtimeClass: { handler: 'runc' } }), [
    /handler "runc", not gVisor \(runsc or gvisor\)/,
  ])
  t.match(namespaceProblems({ ...safe, networkPolicies: [] }), [/denies all Ingress and Egress/])
  t.match(namespaceProblems({ ...safe, networkPolicies: [policy({ podSelector: {}, policyTypes: ['Ingress'] })] }), [
    /denies all Egress/,
  ])
  t.match(
    namespaceProblems({
      ...safe,
      networkPolicies: [policy({ podSelector: { matchLabels: { app: 'other' } }, policyTypes: ['Ingress', 'Egress'] })],
    }),
    [/denies all/],
    'a policy that selects other pods does not count',
  )
  t.same(
    namespaceProblems({
      ...safe,
      networkPolicies: [
        policy({
          podSelector: { matchExpressions: [{ key: 'airlock.dev/sandbox', operator: 'In', values: ['true'] }] },
          policyTypes: ['Ingress', 'Egress'],
        }),
      ],
    }),
    [],
  )
  t.match(
    namespaceProblems({
      ...safe,
      networkPolicies: [
        ...safe.networkPolicies,
        policy({ podSelector: {}, policyTypes: ['Egress'], egress: [{}] }, 'allow-all'),
      ],
    }),
    [/NetworkPolicy allow-all in ns allows traffic/],
    'an allowing policy beside deny-all opens it again',
  )
  t.same(
    namespaceProblems({
      ...safe,
      networkPolicies: [
        policy({ podSelector: { matchExpressions: [{ key: 'x', operator: 'Exists' }] }, egress: [{}] }),
      ],
    }).length,
    1,
    'a policy not selecting sandbox pods is irrelevant',
  )
})

t.test('image references must be pinned by digest', async (t) => {
  t.same([...parseImageRefs(`default=reg/a@sha256:${'c'.repeat(64)}`)], [['default', `reg/a@sha256:${'c'.repeat(64)}`]])
  t.throws(() => parseImageRefs('default=reg/a:latest'), ConfigError)
  t.throws(() => parseImageRefs('nonsense'), ConfigError)
  t.same([...parseImageRefs('')], [])
})

t.test('a full quota may clear; a LimitRange or Pod Security refusal does not', async (t) => {
  t.ok(
    isTransientRefusal(
      'pods "airlock-job-1-x" is forbidden: exceeded quota: sandboxes, requested: pods=1, used: pods=200, limited: pods=200',
    ),
  )
  t.notOk(
    isTransientRefusal(
      'pods "airlock-job-1-x" is forbidden: maximum memory usage per Container is 8Gi, but limit is 16Gi',
    ),
  )
  t.notOk(
    isTransientRefusal(
      'pods "airlock-job-1-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
    ),
  )
})

t.test(
  'a warm Job is the same sandbox pod as a cold one, waiting on stdin, with no Secret and no tenant until its claim',
  async (t) => {
    const { jobId: _, tenant: __, spec: ___, ...rest } = input
    const warm = buildWarmJob({ ...rest, name: 'airlock-warm-ab12-0', limits: spec.limits, maxIdleSeconds: 660 })
    const cold = buildJob(input)
    const w = warm.spec!.template.spec!
    const c = cold.spec!.template.spec!
    t.equal(warm.metadata?.name, 'airlock-warm-ab12-0')
    t.same(
      warm.metadata?.labels,
      {
        'app.kubernetes.io/managed-by': 'airlock',
        [LABEL_JOB]: 'airlock-warm-ab12-0',
        'airlock.dev/sandbox': 'true',
        [LABEL_WARM]: 'idle',
      },
      'selected by the deny-all policy; no tenant yet',
    )
    t.same(warm.spec?.template.metadata?.labels, warm.metadata?.labels)
    t.equal(
      warm.spec?.activeDeadlineSeconds,
      660,
      'it waits at most its idle time; the claim sets the job’s own deadline',
    )
    for (const key of [
      'runtimeClassName',
      'automountServiceAccountToken',
      'enableServiceLinks',
      'hostNetwork',
      'hostPID',
      'hostIPC',
      'securityContext',
      'restartPolicy',
    ] as const) {
      t.same(w[key], c[key], `${key}: as a cold pod's`)
    }
    const wc = w.containers[0]!
    const cc = c.containers[0]!
    t.same(wc.securityContext, cc.securityContext, 'read-only root, no privilege escalation, no capabilities, non-root')
    t.same(wc.resources, cc.resources, 'the resources of a job with the pool’s limits')
    t.equal(wc.stdin, true)
    t.equal(wc.stdinOnce, true, 'stdin closes when the attach that carried the job ends')
    t.same(wc.command, warmStreamLauncherArgv().map(kubeLiteral))
    t.match(wc.command![2], /Seccomp/, 'the launcher checks its seccomp filter before it reads anything')
    t.notOk(
      w.volumes?.some((v) => v.secret),
      'no Secret: the job comes through stdin',
    )
    t.same(
      w.volumes?.find((v) => v.name === 'job')?.emptyDir,
      { medium: 'Memory', sizeLimit: '64Mi' },
      "the job's files are written to memory, not the node's disk",
    )
    t.same(
      wc.volumeMounts?.find((m) => m.name === 'job'),
      { name: 'job', mountPath: JOB_FILES_MOUNT },
    )
  },
)
