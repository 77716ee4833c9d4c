import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../core/config.js'
import { hostCgroups } from '../../worker/executors/local/cgroup-host.js'
import { exists } from '../../worker/executors/local/cgroups.js'
import { build, writeBareBundle } from '../helper.js'

// The one place the pinned release is written down is the build script.
const buildScript = await readFile(new URL('../../scripts/build-gvisor.sh', import.meta.url), 'utf8')
const PINNED = /AIRLOCK_GVISOR_VERSION:-([^}]+)\}/.exec(buildScript)?.[1] ?? 'unknown'
const config = loadConfig({})
const DEBIAN_RUNSC = '/usr/bin/runsc'

/** Whether an ELF file asks for a program interpreter (PT_INTERP): dynamically linked. */
function hasInterpreter(elf: Buffer): boolean {
  const phoff = Number(elf.readBigUInt64LE(0x20))
  const phentsize = elf.readUInt16LE(0x36)
  const phnum = elf.readUInt16LE(0x38)
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return true
  return false
}

t.test('the pinned gVisor is installed where the executors and containerd look, static', async (t) => {
  t.match(PINNED, /^v0\.0\.0-\d{14}-[0-9a-f]{12}$/, 'the pin is a Go module pseudo-version')
  t.equal(config.runscPath, '/usr/local/bin/runsc', 'the default runsc is the one build-gvisor.sh installs')
  for (const path of [
    config.runscPath,
    '/usr/local/bin/gvisor-bin/gvisor_sentry',
    '/usr/local/bin/containerd-shim-runsc-v1',
  ]) {
    const head = await readFile(path).then((b) => b.subarray(0, 4096))
    t.equal(head.subarray(0, 4).toString('latin1'), '\x7fELF', `${path} is an executable`)
    t.notOk(
      hasInterpreter(head),
      `${path} is statically linked (runsc re-executes itself in a chroot without a loader)`,
    )
  }
  const version = spawnSync(config.runscPath, ['--version'], { encoding: 'utf8' }).stdout
  t.match(version, `runsc version ${PINNED}`, 'runsc reports the pinned version')
  const shim = spawnSync('/usr/local/bin/containerd-shim-runsc-v1', ['-v'], { encoding: 'utf8' })
  t.match(`${shim.stdout}${shim.stderr}`, /containerd-shim-runsc-v1|version/i, 'the shim runs')
})

t.test('every job runs under the pinned runsc on systrap, and says so', async (t) => {
  const h = await build(t)
  t.equal(h.worker?.isolation?.ok, true)
  t.match(
    h.worker?.isolation?.detail,
    /platform systrap, cgroup v1; platforms that work here: systrap, ptrace/,
    'the worker reports which platforms work here',
  )
  const job = await h.run({ runtime: 'bash', source: 'echo hi' })
  t.equal(job.status, 'succeeded')
  t.same(
    { runtime: job.isolation?.runtime, version: job.isolation?.version, platform: job.isolation?.platform },
    { runtime: 'runsc', version: PINNED, platform: 'systrap' },
  )
})

t.test(
  "coreutils' ls and stat work in the sandbox (the 2022 release's statx bug and its busybox workaround are gone)",
  async (t) => {
    const h = await build(t)
    const job = await h.run({
      runtime: 'bash',
      source:
        'ls -l main.sh\nstat -c "%s %U" main.sh\nreadlink -f "$(command -v ls)" "$(command -v stat)"\ncommand -v busybox || echo no-busybox',
    })
    t.equal(job.status, 'succeeded', job.stderr)
    t.match(job.stdout, /^-rw-r--r-- 1 sandbox sandbox \d+ .* main\.sh$/m, 'ls -l lists the file')
    t.match(job.stdout, /^\d+ sandbox$/m, 'stat reads it')
    t.match(job.stdout, /^\/usr\/bin\/ls\n\/usr\/bin\/stat\n/m, "they are coreutils' own")
    t.match(job.stdout, /^no-busybox$/m, 'and the image has no busybox')
  },
)

t.test("Debian's 2022 runsc stays usable for comparison, on ptrace, the only platform it has", async (t) => {
  t.test('auto finds that only ptrace works and uses it', async (t) => {
    const h = await build(t, { env: { AIRLOCK_RUNSC_PATH: DEBIAN_RUNSC } })
    t.equal(h.worker?.isolation?.ok, true)
    t.match(
      h.worker?.isolation?.detail,
      /runsc 0\.0~2022\d+\.0, platform ptrace, cgroup v1; platforms that work here: ptrace$/,
    )
    const job = await h.run({ runtime: 'bash', source: 'echo hi' })
    t.same([job.status, job.isolation?.platform], ['succeeded', 'ptrace'])
  })
  t.test('asked for systrap, it takes no jobs and says which platform would work (fail closed)', async (t) => {
    const h = await build(t, { env: { AIRLOCK_RUNSC_PATH: DEBIAN_RUNSC, AIRLOCK_RUNSC_PLATFORM: 'systrap' } })
    t.equal(h.worker?.isolation?.ok, false)
    t.match(
      h.worker?.isolation?.reason,
      /no gVisor platform systrap works on this host \(set AIRLOCK_RUNSC_PLATFORM to ptrace, or auto\): systrap: .*unknown platform/,
    )
    const res = await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'echo hi' })
    t.equal(res.statusCode, 503)
    t.equal(res.json().code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')
  })
})

t.test('runsc boots the sandbox from the sentry sidecar built with it', async (t) => {
  // The pinned release falls back to booting the sentry from runsc itself when its
  // gvisor-bin/ sidecar is missing, with a warning, until that fallback is removed.
  // We install the sidecar so nothing depends on the fallback; this proves runsc uses
  // it, and that the copy without one is the fallback (so the check can fail).
  const dir = await mkdtemp('/run/airlock-test-sidecar-')
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const bundle = join(dir, 'bundle')
  await writeBareBundle(bundle, ['/bin/true'], config.imagesDir)
  await mkdir(join(dir, 'alone'))
  await writeFile(join(dir, 'alone', 'runsc'), await readFile(config.runscPath), { mode: 0o755 })
  const boot = async (runsc: string, name: string) => {
    const logs = join(dir, `logs-${name}`)
    const root = join(dir, `root-${name}`)
    const run = spawnSync(
      runsc,
      [
        `--root=${root}`,
        '--network=none',
        '--debug',
        `--debug-log=${logs}/`,
        'run',
        `--bundle=${bundle}`,
        `airlock-sidecar-${name}`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    )
    spawnSync(runsc, [`--root=${root}`, 'delete', '--force', `airlock-sidecar-${name}`])
    spawnSync('umount', ['-l', join(root, 'null-netns')])
    const text = (await Promise.all((await readdir(logs)).map((f) => readFile(join(logs, f), 'utf8')))).join('\n')
    return { status: run.status, text }
  }
  const installed = await boot(config.runscPath, 'installed')
  t.equal(installed.status, 0, 'the sandbox ran')
  t.match(
    installed.text,
    /Sidecar "gvisor_sentry" found: booting sandbox with \/usr\/local\/bin\/gvisor-bin\/gvisor_sentry/,
  )
  t.notMatch(installed.text, /booting sandbox with runsc itself/)
  t.notMatch(installed.text, /does not match the expected release/, 'the sidecar is of the same release as runsc')
  const alone = await boot(join(dir, 'alone', 'runsc'), 'alone')
  t.equal(alone.status, 0)
  t.match(
    alone.text,
    /booting sandbox with runsc itself/,
    'a runsc without the sidecar would use the deprecated fallback',
  )
})

t.test('a v1 sandbox cgroup is removed from every hierarchy runsc made it in', async (t) => {
  const host = await hostCgroups()
  if (host?.version !== 'v1') {
    t.comment(`skipped: this host has cgroup ${host?.version ?? 'none'}, not v1`)
    return
  }
  const path = `/airlock-test/hierarchies-${process.pid}/airlock-x`
  await host.sandbox(path).create({ memoryBytes: 64 << 20, pids: 64, cpus: 1 })
  // As runsc does, given an absolute cgroupsPath: the same path in every hierarchy.
  const others = (await readdir('/sys/fs/cgroup')).filter((h) => !['memory', 'pids', 'cpu'].includes(h))
  for (const h of others) await mkdir(join('/sys/fs/cgroup', h, path), { recursive: true }).catch(() => undefined)
  await host.sandbox(`/airlock-test/hierarchies-${process.pid}`).remove()
  const left: string[] = []
  for (const h of await readdir('/sys/fs/cgroup')) {
    if (await exists(join('/sys/fs/cgroup', h, `airlock-test/hierarchies-${process.pid}`))) left.push(h)
  }
  t.same(left, [], 'nothing is left in memory, pids, cpu, or cpuset, devices, freezer, systemd, unified')
})
