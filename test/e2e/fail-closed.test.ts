import { spawn, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { loadConfig, type Config } from '../../core/config.js'
import { AUTO_PLATFORMS } from '../../core/runsc-platforms.js'
import { createExecutor } from '../../worker/executors/create-executor.js'
import { removeCgroup } from '../../worker/executors/local/cgroup-host.js'
import { unmountUnder } from '../../worker/executors/local/mounts.js'
import { LocalExecutor, type LocalExecutorOptions } from '../../worker/executors/local/local-executor.js'
import { build, writeBareBundle } from '../helper.js'
import { until } from '../processes.js'

/** A local executor of this host's runsc and images, small and silent, with `options` on top. */
function localExecutor(base: Config, options: Partial<LocalExecutorOptions>): LocalExecutor {
  return new LocalExecutor({
    runscPath: base.runscPath,
    runcPath: base.runcPath,
    platform: base.runscPlatform,
    network: 'none',
    imagesDir: base.imagesDir,
    stateDir: base.stateDir,
    cgroupParent: base.cgroupParent,
    sandboxOverheadMb: 64,
    workspaceMb: 64,
    logger: pino({ level: 'silent' }),
    ...options,
  })
}

t.test('a worker that cannot run runsc takes no jobs, and the API refuses new ones saying why', async (t) => {
  const h = await build(t, { env: { AIRLOCK_RUNSC_PATH: '/nonexistent/runsc' } })
  t.equal(h.worker?.isolation?.ok, false)
  t.match(h.worker?.isolation?.reason, /runsc cannot run/)
  const res = await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'print(1)' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')
  t.match(res.json().message, /runsc cannot run/, 'says why')
  t.notMatch(res.json().message, /\/nonexistent/, "but names no path of the worker's host")
  t.match(
    h.worker?.isolation?.reason,
    /\/nonexistent\/runsc/,
    "the worker's own report (its log, the admin queue) keeps the path",
  )
  const ready = await h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().ready, false)
})

t.test(
  "a runsc that does not enforce the sandbox's seccomp profile runs no job, and the worker says why",
  async (t) => {
    // A wrapper that drops --oci-seccomp stands in for a runsc that ignores the
    // bundle's profile (as every runsc does without that flag).
    const dir = await mkdtemp(join(tmpdir(), 'airlock-no-seccomp-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const wrapper = join(dir, 'runsc')
    const real = loadConfig({}).runscPath
    await writeFile(
      wrapper,
      `#!/bin/sh\nfor a; do shift; [ "$a" = --oci-seccomp ] || set -- "$@" "$a"; done\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    )
    const h = await build(t, { env: { AIRLOCK_RUNSC_PATH: wrapper } })
    t.equal(h.worker?.isolation?.ok, false)
    t.match(
      h.worker?.isolation?.reason,
      /seccomp profile is not enforced inside it \(the probe's \/proc\/self\/status shows Seccomp: 0, not 2\)/,
    )
    const res = await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'print(1)' })
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')
    t.match(res.json().message, /seccomp profile is not enforced/, 'says why')
  },
)

t.test('a worker without its sandbox image refuses to run jobs', async (t) => {
  const h = await build(t, { env: { AIRLOCK_IMAGES_DIR: '/nonexistent/images' } })
  t.equal(h.worker?.isolation?.ok, false)
  t.match(h.worker?.isolation?.reason, /sandbox image "default" is not installed/)
})

/**
 * A real sandbox left running in `owner`'s state directory, as a worker that died would
 * leave it, under a state directory and cgroup parent of the test's own.
 */
async function orphanSandbox(t: Test, name: string, owner: string) {
  const base = loadConfig({
    AIRLOCK_STATE_DIR: `/run/airlock-test/${name}-${process.pid}`,
    AIRLOCK_CGROUP_PARENT: `airlock-test/${name}-${process.pid}`,
  })
  const ownerDir = join(base.stateDir, 'workers', owner)
  const root = join(ownerDir, 'runsc')
  const bundle = join(ownerDir, 'bundles', 'airlock-orphan')
  await mkdir(root, { recursive: true })
  await writeBareBundle(bundle, ['/bin/sleep', '600'], base.imagesDir)
  const runsc = (...args: string[]) => [
    `--root=${root}`,
    `--platform=${base.runscPlatform === 'auto' ? AUTO_PLATFORMS[0] : base.runscPlatform}`,
    '--network=none',
    ...args,
  ]
  const orphan = spawn(base.runscPath, runsc('run', '--detach', `--bundle=${bundle}`, 'airlock-orphan'), {
    stdio: 'ignore',
  })
  await new Promise((resolve) => orphan.once('exit', resolve))
  const listed = spawnSync(base.runscPath, runsc('list', '-quiet'), { encoding: 'utf8' }).stdout
  t.match(listed, /airlock-orphan/, 'the orphan sandbox is running before the worker starts')
  const executor = createExecutor(base, pino({ level: 'silent' }))
  t.teardown(async () => {
    await executor.close()
    spawnSync(base.runscPath, runsc('delete', '-force', 'airlock-orphan'))
    await unmountUnder(base.stateDir)
    await rm(base.stateDir, { recursive: true, force: true })
    await removeCgroup(base.cgroupParent).catch(() => undefined)
  })
  const owners = () => readdir(join(base.stateDir, 'workers')).catch(() => [] as string[])
  const orphanProcesses = () => spawnSync('pgrep', ['-f', 'airlock-orphan'], { encoding: 'utf8' }).stdout.trim()
  return { base, ownerDir, executor, owners, orphanProcesses }
}

t.test('sandboxes left by a worker that died are removed when a worker starts', async (t) => {
  // A pid that is certainly dead: a child that has exited.
  const deadPid = String(spawnSync('true').pid!)
  const { executor, owners, orphanProcesses } = await orphanSandbox(t, 'reap', deadPid)
  t.equal(await executor.reapOrphans(), 1)
  t.notOk((await owners()).includes(deadPid), "the dead worker's state is gone")
  t.equal(orphanProcesses(), '', 'no sandbox process of the orphan remains')
})

t.test("a worker's lapsed lease is taken for its death, whatever its pid; a renewed one is not", async (t) => {
  // Found by a code review (L5): a worker container restarted with its state directory kept
  // is pid 1 again, so its predecessor's pid was alive and its sandboxes were never
  // reaped. The predecessor here has this process's pid, as pid 1 would have.
  const predecessor = `${process.pid}-0badcafe`
  const { base, ownerDir, executor, owners, orphanProcesses } = await orphanSandbox(t, 'lease', predecessor)
  const lapsed = new Date(Date.now() - 5 * 60_000)
  await writeFile(join(ownerDir, 'lease'), '')
  await utimes(join(ownerDir, 'lease'), lapsed, lapsed)
  // A live executor of the same pid, whose lease is renewed: never taken for dead.
  const live = localExecutor(base, { owner: `${process.pid}-0000beef` })
  t.teardown(() => live.close())
  t.equal((await live.checkIsolation()).ok, true, 'the live executor checks its isolation (and takes its lease)')
  // The host's clock stepped forward 5 minutes: the live lease looks as old as the lapsed one
  // until its next renewal. A lease is judged by what this reaper watched of it.
  const liveLease = join(base.stateDir, 'workers', `${process.pid}-0000beef`, 'lease')
  await utimes(liveLease, lapsed, lapsed)
  t.equal(await executor.reapOrphans(), 0, 'a lease seen old for the first time is watched, not yet judged')
  await sleep(10_500)
  t.equal(await executor.reapOrphans(), 1, "the predecessor's sandbox is reaped once its lease stayed still")
  t.same((await owners()).sort(), [`${process.pid}-0000beef`], "its state is gone, the live executor's is not")
  t.equal(orphanProcesses(), '', 'no sandbox process of the orphan remains')
  t.equal(await executor.reapOrphans(), 0, 'and the live one is left alone on the next round')
})

t.test('a host with no cgroup hierarchy the executor knows takes no jobs, and says so', async (t) => {
  // An empty directory stands in for /sys/fs/cgroup: neither v1 controllers nor a v2 root.
  const root = await mkdtemp(join(tmpdir(), 'airlock-no-cgroups-'))
  const base = loadConfig({ AIRLOCK_STATE_DIR: `/run/airlock-test/nocg-${process.pid}` })
  const executor = localExecutor(base, { cgroupParent: 'airlock-test/nocg', cgroupRoot: root })
  t.teardown(async () => {
    await executor.close()
    await rm(root, { recursive: true, force: true })
    await rm(base.stateDir, { recursive: true, force: true })
  })
  const report = await executor.checkIsolation()
  t.equal(report.ok, false)
  t.match(report.reason, /no cgroup hierarchy \(v1 or v2\) is mounted/)
  t.equal(report.isolation, null)
  await t.rejects(
    executor.run({
      jobId: 'nocg',
      tenant: 't',
      spec: {
        runtime: 'bash',
        files: [{ path: 'main.sh', content: 'true' }],
        entrypoint: 'main.sh',
        args: [],
        stdin: '',
        env: {},
        limits: { timeoutMs: 5000, memoryMb: 64, cpus: 1, pids: 16, outputBytes: 1024 },
      },
      signal: new AbortController().signal,
    }),
    { name: 'IsolationUnavailableError' },
    'a job that reaches it anyway is refused before any sandbox starts',
  )
})

t.test("a worker's clean-up of a job leaves another worker's sandbox of the same job alone", async (t) => {
  // Found by review 16: a job's cgroup was named for the job alone, the same on every
  // worker. A stopping worker hands back a job it had prepared but not launched, another
  // worker takes it at once, and the first's clean-up removed that cgroup, killing what
  // ran in it. Two executors in this process stand for the two worker processes, with
  // their default owners: of one pid, as two workers are that each is pid 1 in its
  // container on one host (review 19; the pid alone named both cgroups the same).
  const base = loadConfig({
    AIRLOCK_STATE_DIR: `/run/airlock-test/owners-${process.pid}`,
    AIRLOCK_CGROUP_PARENT: `airlock-test/owners-${process.pid}`,
  })
  const stopping = localExecutor(base, {})
  const taking = localExecutor(base, {})
  t.teardown(async () => {
    await stopping.close()
    await taking.close()
    await rm(base.stateDir, { recursive: true, force: true })
    await removeCgroup(base.cgroupParent).catch(() => undefined)
  })
  const spec = {
    runtime: 'bash',
    files: [{ path: 'main.sh', content: 'sleep 2; echo done' }],
    entrypoint: 'main.sh',
    args: [],
    stdin: '',
    env: {},
    limits: { timeoutMs: 20_000, memoryMb: 64, cpus: 1, pids: 32, outputBytes: 1024 },
  }
  const jobId = `owners${process.pid}`
  const started = new Promise<void>((resolve) => {
    void taking
      .run({
        jobId,
        tenant: 't',
        spec,
        signal: new AbortController().signal,
        onOutput: () => undefined,
        beforeLaunch: async () => {
          setTimeout(resolve, 500)
        },
      })
      .then((outcome) => results.push(outcome))
  })
  const results: { status: string; stdout: string }[] = []
  await started
  // The stopping worker prepares the same job, is stopped before its launch, and cleans up.
  const stopped = new AbortController()
  stopped.abort()
  const handedBack = await stopping.run({ jobId, tenant: 't', spec, signal: stopped.signal })
  t.equal(handedBack.status, 'cancelled', 'the stopping worker launched nothing')
  await stopping.close()
  await until(
    async () => results.length,
    (n) => n === 1,
    20_000,
    'the other worker to finish the job',
  )
  t.match(results[0], { status: 'succeeded', stdout: 'done\n' }, "the other worker's sandbox ran to its end")
})
