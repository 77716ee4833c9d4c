import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statfsSync } from 'node:fs'
import { release } from 'node:os'
import t from 'tap'
import { Airlock } from '../../sdk/src/index.js'
import { PROBES } from '../../cli/verify/probes.js'
import { runProbes, selectProbes } from '../../cli/verify/verify.js'
import { rm } from 'node:fs/promises'
import { pino } from 'pino'
import { loadConfig } from '../../core/config.js'
import type { Job } from '../../core/job.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import type { JobRequest } from '../../sdk/src/index.js'
import { createExecutor } from '../../worker/executors/create-executor.js'
import { removeCgroup } from '../../worker/executors/local/cgroup-host.js'
import { build, metricValue, TENANTS, warmIdle } from '../helper.js'

// The hostile-workload suite: every probe of `airlock verify`, run as an ordinary
// tenant over real HTTP against a real worker and real gVisor, plus the host-side
// half of the claims that only the host can check.

function freeHostBytes(): number {
  const s = statfsSync('/')
  return s.bavail * s.bsize
}

// Twice: with sandboxes booted before their jobs (a pool large enough that the probes'
// jobs find one) and with every sandbox booted for its job.
for (const [mode, pool] of [
  ['warm', 'python=4:8,bash=2:4'],
  ['cold', 'none'],
] as const)
  t.test(`every hostile probe is contained (${mode} sandboxes)`, async (t) => {
    const h = await build(t, { listen: true, env: { AIRLOCK_WARM_POOL: pool } })
    if (mode === 'warm') await warmIdle(h, 'python', 4)
    const client = new Airlock({ baseUrl: h.baseUrl, apiKey: TENANTS.alice })
    const diskBefore = freeHostBytes()
    const outcomes = await runProbes(client)
    const diskAfter = freeHostBytes()

    t.equal(outcomes.length, PROBES.length)
    for (const o of outcomes) t.ok(o.pass, `${o.name}: ${o.claim} — observed: ${o.observed}`)

    const observed = new Map(outcomes.map((o) => [o.name, o.observed]))
    // The concrete outcomes the claims rest on, not just "it passed".
    t.match(observed.get('resources.fork-bomb'), /errno 11: Resource temporarily unavailable; job succeeded/)
    t.match(observed.get('resources.memory-bomb'), /^job oom/)
    t.match(observed.get('resources.cpu-spin'), /^spin: timeout .* other job: succeeded "alive\\n"/)
    t.match(observed.get('resources.output-flood'), /truncated true, kept 4096 bytes/)
    t.match(observed.get('fs.workspace-fill'), /errno 28: No space left on device/)
    t.match(observed.get('fs.read-only-root'), /\/ mounted ro/)
    t.match(observed.get('network.host-ports'), /:6379 errno 111: Connection refused/)
    // The 2022 release answered "no route"; the pinned one "network unreachable": with
    // only loopback, either is the sandbox's own stack refusing, before any packet.
    t.match(
      observed.get('network.metadata'),
      /169\.254\.169\.254:80 errno (113: No route to host|101: Network is unreachable)/,
    )
    t.match(observed.get('network.dns'), /errno -3/)
    t.match(
      observed.get('identity.setuid'),
      /setuid\(0\): errno 1: Operation not permitted; setuid\/setgid files: none/,
    )
    t.match(observed.get('secrets.shadow'), /errno 13: Permission denied/)
    t.match(observed.get('secrets.environment'), /leaks: none; service account tokens: none/)
    t.match(observed.get('secrets.host-processes'), /^visible processes: 1:python3$/)
    t.match(
      observed.get('seccomp.namespaces'),
      /^seccomp 2; unshare\(NEWUSER\) EPERM; .*clone\(NEWUSER\) EPERM; clone3\(NEWUSER\) ENOSYS; clone3\(no flags\) ENOSYS; threads ok; child unshare\(NEWUSER\) EPERM; child CapEff 0{16}$/,
    )
    t.match(
      observed.get('seccomp.raw-sockets'),
      /AF_PACKET SOCK_RAW after unshare\(NEWUSER\|NEWNET\) EPERM; still allowed: AF_INET SOCK_STREAM ok/,
    )
    t.match(observed.get('seccomp.ptrace'), /PTRACE_CONT ok; child exit 7; PTRACE_ATTACH EPERM; PTRACE_SEIZE EPERM/)

    // Host-side checks.
    const kernel = /uname -r (\S+)/.exec(observed.get('kernel.gvisor') ?? '')?.[1]
    t.ok(kernel && kernel !== release(), `the sandbox kernel (${kernel}) is not the host's (${release()})`)
    t.ok(
      diskBefore - diskAfter < 32 * 1024 * 1024,
      `filling the workspace (63 MiB) did not use the host disk (free space changed by ${Math.round((diskBefore - diskAfter) / 1024)} KiB)`,
    )
    const hostShadowRoot =
      readFileSync('/etc/shadow', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('root:'))
        ?.split(':')[1] ?? ''
    if (hostShadowRoot.length > 3) {
      t.notOk(
        outcomes.some((o) => o.observed.includes(hostShadowRoot)),
        "the host's root password hash appears in no output",
      )
    }
    const after = await client.run({ runtime: 'bash', source: 'echo still fine' })
    t.match(after, { status: 'succeeded', stdout: 'still fine\n' }, 'the service runs jobs normally after the attacks')

    const claims = async (result: string) =>
      await metricValue(h.metrics, 'airlock_warm_claims_total', { runtime: 'python', result })
    const [hits, misses] = [await claims('hit'), await claims('miss')]
    t.comment(`python jobs: ${hits} warm, ${misses} cold`)
    if (mode === 'warm') {
      t.ok(hits > 2 * misses, `most probe jobs ran in warm sandboxes (${hits} warm, ${misses} cold)`)
      t.match(
        observed.get('jobs.previous-job'),
        /^found: nothing; the jobs started warm and warm$/,
        'two warm jobs one after the other: nothing of the first in the second',
      )
    } else {
      t.equal(hits, 0, 'no warm sandbox without a pool')
      t.match(observed.get('jobs.previous-job'), /^found: nothing; the jobs started cold and cold$/)
    }
  })

t.test('airlock verify fails loudly, naming the probes, when the sandbox is given the host network', async (t) => {
  const cli = new URL('../../dist/bin/airlock.js', import.meta.url).pathname
  if (!existsSync(cli)) {
    t.fail(`${cli} is missing: build first (scripts/test.sh does)`)
    return
  }
  const h = await build(t, { listen: true, env: { AIRLOCK_SANDBOX_NETWORK: 'host' } })
  // Only probes whose targets are on this machine: a weakened sandbox really reaches
  // what it dials, and tests send nothing off the machine.
  const child = spawn(
    process.execPath,
    [
      cli,
      'verify',
      '--url',
      h.baseUrl,
      '--only',
      'network.host-ports',
      '--only',
      'network.interfaces',
      '--only',
      'isolation.record',
      '--json',
    ],
    {
      env: { ...process.env, AIRLOCK_API_KEY: TENANTS.alice },
    },
  )
  let stdout = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 1, 'non-zero exit')
  const report = JSON.parse(stdout) as { passed: boolean; probes: { name: string; pass: boolean; observed: string }[] }
  t.equal(report.passed, false)
  const failed = report.probes.filter((p) => !p.pass).map((p) => p.name)
  t.same(failed.sort(), ['isolation.record', 'network.host-ports', 'network.interfaces'])
  t.match(report.probes.find((p) => p.name === 'network.host-ports')?.observed, /:6379 connected/)
})

t.test('airlock verify passes against a correctly isolated service and prints a table', async (t) => {
  const cli = new URL('../../dist/bin/airlock.js', import.meta.url).pathname
  const h = await build(t, { listen: true })
  const child = spawn(process.execPath, [
    cli,
    'verify',
    '--url',
    h.baseUrl,
    '--key',
    TENANTS.alice,
    '--only',
    'identity',
    '--only',
    'network.interfaces',
  ])
  let stdout = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 0)
  t.match(stdout, /PASS {2}identity\.non-root/)
  t.match(stdout, /all 4 probes passed/)
})

t.test('the seccomp probes fail against a sandbox without the profile: they can tell', async (t) => {
  // The one way to run a sandbox without the profile is the benchmark's override;
  // the probes' jobs go straight to that executor, with no service in between.
  const config = loadConfig({
    AIRLOCK_STATE_DIR: `/run/airlock-test/noseccomp-${process.pid}`,
    AIRLOCK_CGROUP_PARENT: 'airlock-test/noseccomp',
    AIRLOCK_SANDBOX_NETWORK: 'none',
  })
  const executor = createExecutor(config, pino({ level: 'silent' }), { seccomp: false })
  t.teardown(async () => {
    await executor.close()
    await removeCgroup(config.cgroupParent).catch(() => undefined)
    await rm(config.stateDir, { recursive: true, force: true })
  })
  t.ok((await executor.checkIsolation()).ok, 'the unfiltered sandbox itself runs')
  let n = 0
  const direct = {
    async run(request: JobRequest) {
      const spec = resolveJobSpec(request as Parameters<typeof resolveJobSpec>[0], config)
      const outcome = await executor.run({
        jobId: `noseccomp_${n++}`,
        tenant: 't',
        spec,
        signal: new AbortController().signal,
      })
      return { ...outcome, isolation: null } as unknown as Job
    },
  } as unknown as Airlock
  const outcomes = await runProbes(direct, selectProbes(['seccomp']))
  t.equal(outcomes.length, 4)
  for (const o of outcomes) t.notOk(o.pass, `${o.name} fails without the profile: ${o.observed}`)
  const observed = new Map(outcomes.map((o) => [o.name, o.observed]))
  t.match(
    observed.get('seccomp.namespaces'),
    /^seccomp 0; unshare\(NEWUSER\) ok/,
    'without it a job makes a user namespace',
  )
  t.match(
    observed.get('seccomp.namespaces'),
    /child unshare\(NEWUSER\) ok; child CapEff 0*[13]f{9,}$/,
    '...and then holds a full capability set',
  )
  t.match(
    observed.get('seccomp.raw-sockets'),
    /AF_PACKET SOCK_RAW after unshare\(NEWUSER\|NEWNET\) ok/,
    '...and with a network namespace of its own, a raw packet socket',
  )
})
