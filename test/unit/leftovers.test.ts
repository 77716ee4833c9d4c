import { spawn, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { findLeftovers, removeSharedParents, type Roots } from '../leftovers.js'

// The suite's end-of-run check (test/leftovers.ts, tap's `after`) on a machine made up
// in a temporary directory: a cgroup tree laid out as v1, /run, /tmp and the network
// links are directories standing in for the host's (the test says so: planting a leak
// in the real ones would fail the real check). Processes and mounts are real ones,
// named by paths in the stand-in /run.

t.test(
  'the end-of-run check finds what a test left and fails on it, and takes only empty shared parents away',
  async (t) => {
    const fake = await mkdtemp(join(tmpdir(), 'leftovers-fake-'))
    const roots: Roots = {
      cgroup: join(fake, 'cgroup'),
      run: join(fake, 'run'),
      tmp: join(fake, 'tmp'),
      proc: '/proc',
      net: join(fake, 'net'),
    }
    const dirs = [
      'cgroup/memory/airlock-test/test-x-1/airlock-job_1', // a leaked sandbox cgroup
      'cgroup/pids/airlock-test', // the shared parent, empty: removed
      'cgroup/memory/airlock', // the developer's own service: not the suite's
      'cgroup/memory/other-software',
      'run/airlock-test', // empty: removed
      'run/airlock-bench-4242/runsc', // a bench's state
      'run/airlock',
      'tmp/airlock-launcher-abc',
      'tmp/unrelated',
      'net/airlock-cni0',
      'net/eth0',
    ]
    for (const d of dirs) await mkdir(join(fake, d), { recursive: true })
    const mountPoint = join(fake, 'run/airlock-bench-4242/runsc/null-netns')
    await mkdir(mountPoint)
    const mounted = spawnSync('mount', ['-t', 'tmpfs', 'leftovers-test', mountPoint]).status === 0
    const proc = spawn('bash', ['-c', 'sleep 60; true', join(fake, 'run/airlock-test/x/runsc')], { stdio: 'ignore' })
    t.teardown(async () => {
      proc.kill('SIGKILL')
      spawnSync('umount', [mountPoint])
      await rm(fake, { recursive: true, force: true })
    })
    await new Promise((r) => setTimeout(r, 200))

    await removeSharedParents(roots)
    t.equal(
      await stat(join(fake, 'cgroup/pids/airlock-test')).catch(() => null),
      null,
      'an empty shared cgroup parent is removed',
    )
    t.ok(await stat(join(fake, 'cgroup/memory/airlock-test')), 'one holding a leak stays, to be reported')

    const left = await findLeftovers(roots)
    const has = (re: RegExp) =>
      t.ok(
        left.some((l) => re.test(l)),
        `reports ${re}`,
      )
    has(/^cgroup .*\/memory\/airlock-test\/test-x-1\/airlock-job_1$/)
    has(/^state directory .*\/run\/airlock-bench-4242 \(holding runsc\)$/)
    has(/^temporary directory .*\/tmp\/airlock-launcher-abc$/)
    has(/^network link airlock-cni0$/)
    has(new RegExp(`^process ${proc.pid}: bash -c sleep 60; true .*/run/airlock-test/x/runsc`))
    if (mounted) has(/^mount .*\/run\/airlock-bench-4242\/runsc\/null-netns$/)
    else t.comment('mount refused here: the mount check is not exercised')
    t.notOk(
      left.some((l) => /\/airlock$|other-software|unrelated|eth0/.test(l)),
      `nothing else: ${left.join('; ')}`,
    )

    proc.kill('SIGKILL')
    spawnSync('umount', [mountPoint])
    for (const d of [
      'cgroup/memory/airlock-test',
      'run/airlock-bench-4242',
      'tmp/airlock-launcher-abc',
      'net/airlock-cni0',
    ])
      await rm(join(fake, d), { recursive: true })
    await new Promise((r) => setTimeout(r, 100))
    t.same(await findLeftovers(roots), [], 'once removed, nothing is reported')
  },
)
