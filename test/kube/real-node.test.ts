/**
 * The Kubernetes path end to end on a real node: test/kube/cluster.sh brings up this
 * machine as a one-node cluster (control plane, containerd with the runsc and runc
 * handlers, kubelet), and Airlock runs with the kubernetes executor against it. Jobs
 * go in over REST, run in real pods under gVisor, and stream back over WebSocket.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node'
import type { Job } from '../../core/job.js'
import type { JobEvent } from '../../core/job-events.js'
import { runProbes } from '../../cli/verify/verify.js'
import { kubeJobName, LABEL_JOB } from '../../worker/executors/kubernetes/job-manifests.js'
import { LAUNCHER_REPORT } from '../../worker/executors/sandbox-process.js'
import { Airlock } from '../../sdk/src/index.js'
import { exited, freePort, startAirlock, startRedis, until } from '../processes.js'
import { openStream } from '../ws-client.js'

const run = promisify(execFile)
const HERE = new URL('.', import.meta.url).pathname
const KEY = 'real-node-key-0123456789abcdef0123456789'
const BENCH_KEY = 'real-node-bench-0123456789abcdef01234567'

// Bringing the cluster up (and on a fresh machine, building its images) and the
// whole probe catalog on real pods take longer than .taprc's limit for one file.
t.setTimeout(15 * 60_000)

const dir = await mkdtemp(join(tmpdir(), 'airlock-cluster-'))
t.teardown(() => run('bash', [join(HERE, 'cluster.sh'), 'down', dir]).catch(() => undefined))
const t0 = Date.now()
const envFile = (
  await run('bash', [join(HERE, 'cluster.sh'), 'up', dir], { maxBuffer: 64 * 1024 * 1024, timeout: 40 * 60_000 })
).stdout.trim()
t.comment(`single-node cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
const clusterEnv = Object.fromEntries(
  (await readFile(envFile, 'utf8'))
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
) as Record<string, string>

const kc = new KubeConfig()
kc.loadFromFile(clusterEnv.AIRLOCK_K8S_KUBECONFIG!)
const core = kc.makeApiClient(CoreV1Api)

const redis = await startRedis()
t.teardown(() => void redis.process.kill())
const port = await freePort()
const baseUrl = `http://127.0.0.1:${port}`
const airlock = startAirlock('all', {
  ...clusterEnv,
  REDIS_URL: redis.url,
  PORT: String(port),
  AIRLOCK_API_KEYS: `tenant-a:${KEY},bench:${BENCH_KEY}`,
  AIRLOCK_BENCH_TENANTS: 'bench',
  // Two sandboxes at once (verify's concurrency probes); both fit the node.
  AIRLOCK_WORKER_CONCURRENCY: '2',
})
t.teardown(async () => {
  airlock.kill('SIGTERM')
  await exited(airlock)
})
await until(
  () =>
    fetch(`${baseUrl}/readyz`).then(
      (r) => r.json() as Promise<{ ready: boolean }>,
      () => ({ ready: false }),
    ),
  (r) => r.ready,
  60_000,
  'Airlock on the kubernetes executor to be ready',
)

async function submit(key: string, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${baseUrl}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (res.status !== 202) throw new Error(`POST /v1/jobs: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { id: string }).id
}

async function stored(key: string, id: string): Promise<Job> {
  return (await (
    await fetch(`${baseUrl}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } })
  ).json()) as Job
}

/** The pods of job `id`, while they exist. */
async function podsOf(id: string): Promise<V1Pod[]> {
  return (
    await core.listNamespacedPod({ namespace: 'airlock-sandbox', labelSelector: `${LABEL_JOB}=${kubeJobName(id)}` })
  ).items
}

const TICKING = `import os, sys, time
print("kernel", os.uname().release, flush=True)
for i in range(3):
    time.sleep(1)
    print("tick", i, flush=True)
print("done", file=sys.stderr, flush=True)
`

t.test('a python job over REST runs in a gVisor pod and streams its output over WebSocket while it runs', async (t) => {
  const id = await submit(KEY, { runtime: 'python', source: TICKING, limits: { timeoutMs: 60_000 } })
  const stream = openStream(baseUrl, `/v1/jobs/${id}/stream`, { authorization: `Bearer ${KEY}` })
  // The pod, seen while it exists and once it is bound: the RuntimeClass it ran under and the node.
  const pod = (
    await until(
      () => podsOf(id),
      (pods) => pods.some((p) => p.spec?.nodeName),
      60_000,
      `a scheduled pod for ${id}`,
    )
  )[0]
  // gVisor's shim puts the pod's containers (pause and the job's) into one sandbox:
  // while the job runs, one sandbox process of the node's runsc exists, not two.
  const sandboxes = async () =>
    (
      await run('pgrep', ['-fc', `runsc-sandbox .*--root=${dir}/containerd/runsc`]).catch(
        (err: { stdout?: string }) => ({ stdout: err.stdout ?? '0' }),
      )
    ).stdout.trim()
  const seen = await until(sandboxes, (n) => n !== '0', 30_000, `a sandbox process for ${id}`)
  const got = await stream
  const logs = got.events.filter((e): e is Extract<JobEvent, { type: 'log' }> & { at: number } => e.type === 'log')
  const end = got.events.find((e) => e.type === 'end')
  t.ok(end, 'the stream ends with the job')
  t.equal(seen, '1', 'one sandbox for the pod (pause and job share it)')
  const text = logs
    .filter((e) => e.stream === 'stdout')
    .map((e) => e.data)
    .join('')
  const errText = logs
    .filter((e) => e.stream === 'stderr')
    .map((e) => e.data)
    .join('')
  const kernel = /^kernel (\S+)\n/.exec(text)?.[1]
  t.ok(
    kernel && kernel !== release(),
    `uname -r inside the pod is gVisor's kernel (${kernel}), not the host's (${release()})`,
  )
  t.match(text, /tick 0\ntick 1\ntick 2\n$/)
  t.equal(errText, 'done\n', "stderr is streamed apart from stdout (the cluster's PodLogsQuerySplitStreams gate)")
  const first = logs.find((e) => e.data.includes('kernel'))!
  t.ok(end!.at - first.at >= 2000, `the first line arrived ${end!.at - first.at} ms before the end, while the job ran`)
  const ticks = logs.filter((e) => e.data.includes('tick'))
  t.ok(
    ticks.length >= 2 && ticks.at(-1)!.at - ticks[0]!.at >= 1000,
    'ticks arrived as they were printed, not all at the end',
  )

  t.equal(pod?.spec?.runtimeClassName, 'gvisor')
  t.equal(pod?.spec?.nodeName, 'airlock-node-1', 'scheduled on the real node')
  t.ok(pod?.spec?.overhead?.memory, 'the RuntimeClass overhead was added to the pod')

  const job = await stored(KEY, id)
  t.match(job, { id, status: 'succeeded', exitCode: 0, executor: 'kubernetes' })
  t.equal(job.stdout, text, 'the stored result has the same output as the stream')
  t.equal(job.stderr, 'done\n')
  t.match(job.isolation, { technology: 'gvisor', runtime: 'runsc', platform: 'kubernetes' })
})

t.test(
  "the launcher's report: a job ends from its log with the program's status and exact output; lines the program forges are only output",
  async (t) => {
    // A nonce of the right form, but not the launcher's: it cannot know that one.
    const forged = `${LAUNCHER_REPORT.exit} 00112233445566778899aabbccddeeff 0 1\n${LAUNCHER_REPORT.end} 00112233445566778899aabbccddeeff\n`
    const id = await submit(KEY, {
      runtime: 'bash',
      source: `sleep 2; printf '%s' '${forged}'; printf '%s' '${forged}' >&2; printf 'last'; exit 4`,
      limits: { timeoutMs: 60_000 },
    })
    const job = await until(
      () => stored(KEY, id),
      (j) => j.finishedAt !== null,
      120_000,
      `job ${id} to end`,
    )
    t.match(job, { status: 'failed', exitCode: 4, signal: null }, "the program's own status, not the forged 0")
    t.equal(job.stdout, `${forged}last`, 'stdout is exactly what the program wrote, forged lines included')
    t.equal(job.stderr, forged, 'and stderr')
    t.ok(
      Number.isInteger(job.timings.exitToResultMs) && job.timings.exitToResultMs! >= 0,
      `program end to result recorded (${job.timings.exitToResultMs} ms)`,
    )

    // A signal's status comes from the container's, which the kubelet reports later.
    const killed = await submit(KEY, {
      runtime: 'bash',
      source: 'echo before; kill -9 $$',
      limits: { timeoutMs: 60_000 },
    })
    const k = await until(
      () => stored(KEY, killed),
      (j) => j.finishedAt !== null,
      120_000,
      `job ${killed} to end`,
    )
    t.match(k, { status: 'failed', exitCode: null, signal: 'SIGKILL', stdout: 'before\n' })
    t.ok(Number.isInteger(k.timings.exitToResultMs), 'its program end to result is recorded too')
  },
)

t.test(
  'a cold pod takes its go line through the attach: stdin, the output cap, a timeout, an OOM kill and a cancel end as they did',
  async (t) => {
    const ended = async (id: string) =>
      until(
        () => stored(KEY, id),
        (j) => j.finishedAt !== null,
        120_000,
        `job ${id} to end`,
      )
    // One after another: a gVisor pod's request and overhead leave room for one at a time here.
    const stdin = await submit(KEY, {
      runtime: 'python',
      source: 'import sys; print(sys.stdin.read().upper())',
      stdin: 'hello stdin',
    })
    const pod = (
      await until(
        () => podsOf(stdin),
        (pods) => pods.length > 0,
        60_000,
        `a pod for ${stdin}`,
      )
    )[0]!
    t.equal(pod.spec?.containers[0]?.stdin, true, "the cold pod's container waits on stdin for its go line")
    t.notOk(pod.spec?.containers[0]?.stdinOnce, 'and keeps it open past one attach')
    t.match(
      await ended(stdin),
      { status: 'succeeded', exitCode: 0, stdout: 'HELLO STDIN\n' },
      "the program's stdin is the job's",
    )
    const cap = await ended(
      await submit(KEY, {
        runtime: 'bash',
        source: 'head -c 5000 /dev/zero | tr "\\0" a; echo e >&2',
        limits: { outputBytes: 100 },
      }),
    )
    t.match(
      cap,
      { status: 'succeeded', truncated: true, stdout: 'a'.repeat(100), stderr: 'e\n' },
      'output capped in the sandbox, stderr apart',
    )
    t.match(
      await ended(await submit(KEY, { runtime: 'bash', source: 'echo start; sleep 30', limits: { timeoutMs: 2000 } })),
      { status: 'timeout', stdout: 'start\n' },
    )
    const oom = await ended(
      await submit(KEY, {
        runtime: 'python',
        source: 'x = bytearray(600 * 1024 * 1024); print(len(x))',
        limits: { memoryMb: 128 },
      }),
    )
    t.equal(oom.status, 'oom', "an OOM kill ends the launcher too: the container's status says so")
    const cancel = await submit(KEY, { runtime: 'bash', source: 'echo x; sleep 60' })
    // The kubelet shows the container running up to a second after the attach could reach it.
    await until(
      () => podsOf(cancel),
      (pods) => pods.some((p) => p.status?.containerStatuses?.[0]?.state?.running),
      60_000,
      `the pod of ${cancel} to run`,
    )
    await new Promise((r) => setTimeout(r, 1000))
    await fetch(`${baseUrl}/v1/jobs/${cancel}`, { method: 'DELETE', headers: { authorization: `Bearer ${KEY}` } })
    t.match(await ended(cancel), { status: 'cancelled', reason: 'cancelled while running', stdout: 'x\n' })
  },
)

t.test(
  'a compiled job with test cases runs its steps in a pod as it does locally: compiled once, each case judged; a compile error is its own outcome',
  async (t) => {
    const ended = async (id: string) =>
      until(
        () => stored(KEY, id),
        (j) => j.finishedAt !== null,
        120_000,
        `job ${id} to end`,
      )
    const double = '#include <stdio.h>\nint main() { int n; scanf("%d", &n); printf("%d\\n", 2 * n); return 0; }\n'
    const cases = await ended(
      await submit(KEY, {
        runtime: 'c',
        source: double,
        tests: [
          { stdin: '2', expectedOutput: '4' },
          { stdin: '3', expectedOutput: '7' },
        ],
        limits: { timeoutMs: 30_000 },
      }),
    )
    t.equal(cases.compile?.status, 'succeeded', cases.reason ?? '')
    t.same(
      cases.tests.map((c) => [c.status, c.stdout]),
      [
        ['passed', '4\n'],
        ['wrong-answer', '6\n'],
      ],
    )
    t.equal(cases.stdout, '4\n6\n')
    const broken = await ended(
      await submit(KEY, { runtime: 'c', source: 'int main() { return nope; }', limits: { timeoutMs: 30_000 } }),
    )
    t.match(broken, { status: 'failed', stdout: '', compile: { status: 'failed', exitCode: 1 } })
    t.match(broken.compile?.stderr, /nope/)
  },
)

t.test('the same job under the runc RuntimeClass runs on the host kernel, recorded as no sandbox', async (t) => {
  const id = await submit(BENCH_KEY, {
    runtime: 'python',
    source: TICKING,
    isolation: 'runc',
    limits: { timeoutMs: 60_000 },
  })
  const pod = (
    await until(
      () => podsOf(id),
      (pods) => pods.length > 0,
      60_000,
      `a pod for ${id}`,
    )
  )[0]
  const job = await until(
    () => stored(BENCH_KEY, id),
    (j) => j.finishedAt !== null,
    120_000,
    `job ${id} to end`,
  )
  t.equal(pod?.spec?.runtimeClassName, 'runc')
  t.equal(job.status, 'succeeded')
  const kernel = /^kernel (\S+)/.exec(job.stdout)?.[1]
  t.equal(kernel, (await run('uname', ['-r'])).stdout.trim(), "runc shares the host's kernel")
  t.match(job.isolation, { technology: 'none', runtime: 'runc', platform: 'kubernetes', network: 'pod' })
  t.ok(job.timings.startupMs !== null && job.timings.runMs !== null, 'timings recorded, as the load test compares them')
})

t.test('the isolation probes of airlock verify pass against the cluster', async (t) => {
  const client = new Airlock({ baseUrl, apiKey: KEY })
  const outcomes = await runProbes(client)
  t.ok(outcomes.length >= 20, `${outcomes.length} probes ran`)
  for (const o of outcomes) t.ok(o.pass, `${o.name}: ${o.claim} (${o.observed})`)
})

/** One sample of a Prometheus text page, summed over the series that carry `labels`. */
async function metric(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await fetch(url).then(
    (r) => r.text(),
    () => '',
  )
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop())
  }
  return sum
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN
}

t.test(
  'warm pods: a job handed to a pod booted before it arrived, through its stdin; a crashed worker’s warm job is adopted',
  async (t) => {
    // A second Airlock on the same cluster with warm pods, sized small so they fit the node beside running jobs.
    const warmPort = await freePort()
    const metricsPort = await freePort()
    const warmUrl = `http://127.0.0.1:${warmPort}`
    const settings = {
      ...clusterEnv,
      REDIS_URL: redis.url,
      AIRLOCK_REDIS_PREFIX: 'warm-pods',
      AIRLOCK_API_KEYS: `tenant-w:${KEY}`,
      AIRLOCK_DEFAULT_CPUS: '0.25',
      AIRLOCK_DEFAULT_MEMORY_MB: '128',
      AIRLOCK_WORKER_CONCURRENCY: '2',
    }
    let warm = startAirlock('all', {
      ...settings,
      PORT: String(warmPort),
      AIRLOCK_METRICS_PORT: String(metricsPort),
      AIRLOCK_METRICS_HOST: '127.0.0.1',
      AIRLOCK_K8S_WARM_POOL: 'bash=2:2',
    })
    t.teardown(async () => {
      warm.kill('SIGTERM')
      await exited(warm)
    })
    const idle = () =>
      metric(`http://127.0.0.1:${metricsPort}/metrics`, 'airlock_warm_sandboxes', { runtime: 'bash', state: 'idle' })
    await until(idle, (n) => n >= 2, 180_000, 'two idle warm pods')
    const run = async (body: Record<string, unknown>): Promise<Job> => {
      const res = await fetch(`${warmUrl}/v1/jobs?wait=true`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return (await res.json()) as Job
    }

    const job = await run({
      runtime: 'bash',
      source: 'printf "<%s>" "$@"; echo; echo "$GREETING"; cat; id -u',
      args: ['a b', '$(HOME)'],
      env: { GREETING: 'hi\nthere' },
      stdin: 'from stdin\n',
      limits: { timeoutMs: 30_000 },
    })
    t.match(
      job,
      { status: 'succeeded', exitCode: 0, sandboxStart: 'warm', executor: 'kubernetes' },
      `the job ran in a warm pod: ${job.reason ?? ''} ${job.stderr}`,
    )
    t.equal(job.stdout, '<a b><$(HOME)>\nhi\nthere\nfrom stdin\n10001\n', 'its argv, environment and stdin, exactly')
    t.ok(
      job.timings.bootMs !== null && job.timings.bootMs > 0,
      `its pod booted in ${job.timings.bootMs} ms, before the job`,
    )

    // Accepted -> program running, one job at a time: warm, and cold (a memory limit no warm pod has).
    const acceptedToRunning: Record<'warm' | 'cold', number[]> = { warm: [], cold: [] }
    for (let i = 0; i < 6; i++) {
      await until(idle, (n) => n >= 1, 120_000, 'an idle warm pod')
      for (const [kind, limits] of [
        ['warm', {}],
        ['cold', { memoryMb: 160 }],
      ] as const) {
        const j = await run({ runtime: 'bash', source: 'echo ok', limits: { timeoutMs: 60_000, ...limits } })
        t.equal(j.sandboxStart, kind, `${kind}: ${j.status} ${j.reason ?? ''}`)
        if (j.timings.queuedMs !== null && j.timings.startupMs !== null)
          acceptedToRunning[kind].push(j.timings.queuedMs + j.timings.startupMs)
      }
    }
    for (const kind of ['warm', 'cold'] as const) {
      const ms = acceptedToRunning[kind]
      t.comment(
        `accepted -> program running, ${kind}: p50 ${percentile(ms, 50)} ms, p99 ${percentile(ms, 99)} ms (n=${ms.length}): ${ms.join(', ')}`,
      )
    }

    // A worker that dies while its warm pod runs a job: another worker adopts the pod.
    await until(idle, (n) => n >= 1, 120_000, 'an idle warm pod')
    const res = await fetch(`${warmUrl}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        runtime: 'bash',
        source: 'echo started; sleep 8; echo finished',
        limits: { timeoutMs: 60_000 },
      }),
    })
    const { id } = (await res.json()) as { id: string }
    // While no Airlock listens (between the kill and the restart) the job reads as unknown.
    const read = () =>
      fetch(`${warmUrl}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${KEY}` } }).then(
        (r) => r.json() as Promise<Job>,
        () => ({ status: 'unknown', finishedAt: null }) as unknown as Job,
      )
    await until(read, (j) => j.status === 'running', 60_000, 'the job running')
    await new Promise((r) => setTimeout(r, 1500))
    warm.kill('SIGKILL')
    await exited(warm)
    warm = startAirlock('all', { ...settings, PORT: String(warmPort), AIRLOCK_JOB_LOCK_MS: '2000' })
    const adopted = await until(read, (j) => j.finishedAt !== null, 120_000, 'the adopted job to end')
    t.match(adopted, { status: 'succeeded', sandboxStart: 'warm' }, `adopted, not run again: ${adopted.reason ?? ''}`)
    t.match(adopted.stdout, /^started\n(finished\n)?$/, 'the output of its one run')
    t.ok(
      adopted.timings.runMs !== null && adopted.timings.runMs >= 8000,
      `its run time counts from the hand-over (${adopted.timings.runMs} ms)`,
    )

    warm.kill('SIGTERM')
    await exited(warm)
    // Warm Jobs of the killed worker wait out their idle deadline; the cluster's teardown removes them here.
  },
)
