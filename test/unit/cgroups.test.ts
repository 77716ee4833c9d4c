import { mkdtemp, mkdir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cpuQuotaUs, cgroupVersion, flatKeyed } from '../../worker/executors/local/cgroups.js'
import { v1LimitWrites, v1OomKills } from '../../worker/executors/local/cgroups-v1.js'
import {
  V2_ENABLE,
  v2ControllerParents,
  v2LimitWrites,
  v2MissingControllers,
  v2OomKills,
} from '../../worker/executors/local/cgroups-v2.js'
import { hostCgroups } from '../../worker/executors/local/cgroup-host.js'
import { mountsUnder } from '../../worker/executors/local/mounts.js'

const limits = { memoryBytes: 320 * 1024 * 1024, pids: 512, cpus: 1.5 }

t.test('the CPU quota is per 100 ms period, never below the kernel floor of 1 ms', async (t) => {
  t.equal(cpuQuotaUs(1.5), 150_000)
  t.equal(cpuQuotaUs(0.25), 25_000)
  t.equal(cpuQuotaUs(0.001), 1000)
})

t.test('flat-keyed cgroup files are read by key, whatever else they hold', async (t) => {
  const events = 'low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n'
  t.equal(flatKeyed(events, 'oom_kill'), 2)
  t.equal(flatKeyed(events, 'max'), 12)
  t.equal(flatKeyed(events, 'oom_kill_x'), undefined, 'no prefix matches')
  t.equal(flatKeyed('max garbage\n', 'max'), undefined, 'a value that is not a count is no count')
  t.equal(flatKeyed('', 'max'), undefined)
})

t.test('cgroup v1: limits go to memory, pids and cpu; memsw only where swap accounting exists', async (t) => {
  const writes = v1LimitWrites(limits)
  t.same(
    writes.map((w) => [w.controller, w.file, w.value, w.optional ?? false]),
    [
      ['memory', 'memory.limit_in_bytes', String(limits.memoryBytes), false],
      ['memory', 'memory.memsw.limit_in_bytes', String(limits.memoryBytes), true],
      ['pids', 'pids.max', '512', false],
      ['cpu', 'cpu.cfs_period_us', '100000', false],
      ['cpu', 'cpu.cfs_quota_us', '150000', false],
      ['cpu', 'cpu.shares', '1024', false],
    ],
  )
  t.equal(
    v1LimitWrites({ ...limits, background: true }).find((w) => w.file === 'cpu.shares')?.value,
    '2',
    'a warm sandbox waits at the least CPU weight',
  )
  // memory.oom_control as Linux 4.13+ writes it, and as older kernels do (no counter).
  t.equal(v1OomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 1\n', '17'), 1)
  t.equal(
    v1OomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 0\n', '17'),
    0,
    'the counter wins over failcnt where it exists',
  )
  t.equal(v1OomKills('oom_kill_disable 0\nunder_oom 0\n', '3'), 1, 'before 4.13: a failed charge counts as a kill')
  t.equal(v1OomKills('oom_kill_disable 0\nunder_oom 0\n', '0'), 0)
})

t.test('cgroup v2: limits are memory.max (no swap, the group killed whole), pids.max and cpu.max', async (t) => {
  t.same(
    v2LimitWrites(limits).map((w) => [w.file, w.value, w.optional ?? false]),
    [
      ['memory.max', String(limits.memoryBytes), false],
      ['memory.swap.max', '0', true],
      ['memory.oom.group', '1', true],
      ['pids.max', '512', false],
      ['cpu.max', '150000 100000', false],
      ['cpu.weight', '100', false],
    ],
  )
  t.equal(
    v2LimitWrites({ ...limits, background: true }).find((w) => w.file === 'cpu.weight')?.value,
    '1',
    'a warm sandbox waits at the least CPU weight',
  )
})

t.test('cgroup v2: every ancestor of a sandbox, the root first, must enable the controllers', async (t) => {
  t.same(v2ControllerParents('/airlock/airlock-job_1'), ['', 'airlock'])
  t.same(v2ControllerParents('/airlock-test/file-1/airlock-job_1'), ['', 'airlock-test', 'airlock-test/file-1'])
  t.same(v2ControllerParents('airlock-job_1'), [''], 'directly below the root')
  t.equal(V2_ENABLE, '+memory +pids +cpu')
})

t.test('cgroup v2: which of our controllers a hierarchy lacks', async (t) => {
  // cgroup.controllers of a systemd host's root (Debian 12, Ubuntu 22.04).
  t.same(v2MissingControllers('cpuset cpu io memory hugetlb pids rdma misc\n'), [])
  t.same(v2MissingControllers('cpuset io memory\n'), ['pids', 'cpu'])
  t.same(v2MissingControllers(''), ['memory', 'pids', 'cpu'])
})

t.test('cgroup v2: OOM kills come from memory.events', async (t) => {
  t.equal(v2OomKills('low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\noom_group_kill 0\n'), 1)
  t.equal(v2OomKills('low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n'), 0)
  t.equal(v2OomKills('low 0\nhigh 0\nmax 3\noom 1\noom_group_kill 1\n'), 1, 'a kernel that counts only group kills')
  t.equal(v2OomKills(''), 0)
})

t.test('mounts below a directory are found in mountinfo, deepest first, with escapes decoded', async (t) => {
  const mountinfo = [
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '880 25 0:4 net:[4026532291] /run/airlock/workers/12/runsc/null-netns rw - nsfs nsfs rw',
    '881 25 0:4 net:[4026532291] /run/airlock/workers/12/runsc/null-netns rw - nsfs nsfs rw',
    '882 25 0:50 / /run/airlock/workers/12/a\\040b/c rw - tmpfs tmpfs rw',
    '883 25 0:51 / /run/airlock/workers/123/runsc/null-netns rw - nsfs nsfs rw',
  ].join('\n')
  t.same(mountsUnder(mountinfo, '/run/airlock/workers/12'), [
    '/run/airlock/workers/12/runsc/null-netns',
    '/run/airlock/workers/12/runsc/null-netns',
    '/run/airlock/workers/12/a b/c',
  ])
  t.same(
    mountsUnder(mountinfo, '/run/airlock/workers/12/'),
    mountsUnder(mountinfo, '/run/airlock/workers/12'),
    'a trailing slash changes nothing',
  )
  t.same(mountsUnder(mountinfo, '/run/other'), [])
})

/*
 * There is no cgroup v2 host here (this machine is v1 and other software uses its
 * cgroups), so the v2 class is exercised on a directory laid out as the root of a real
 * v2 hierarchy: its cgroup.controllers and cgroup.subtree_control, and the counters
 * the kernel would write. A real cgroupfs creates and removes the control files
 * itself; here the test writes the counters and deletes the files before removal.
 * This proves what the class writes where, not that a kernel accepts it.
 */
t.test('cgroup v2 on a directory laid out as a v2 hierarchy (a stand-in: no v2 host here)', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'airlock-fake-cgroup2-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await writeFile(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n')
  await writeFile(join(root, 'cgroup.subtree_control'), 'memory pids\n')
  await writeFile(join(root, 'cgroup.procs'), '1\n')

  t.equal(await cgroupVersion(root), 'v2', 'cgroup.controllers at the root means the unified hierarchy')
  const host = await hostCgroups(root)
  t.equal(host?.version, 'v2')
  t.equal(await host?.problem(), undefined, 'memory, pids and cpu are offered')

  const sandbox = host!.sandbox('/airlock/airlock-job_1')
  await sandbox.create(limits)
  t.equal(
    await readFile(join(root, 'cgroup.subtree_control'), 'utf8'),
    V2_ENABLE,
    'the root lacked cpu: the controllers are enabled there',
  )
  t.equal(await readFile(join(root, 'airlock', 'cgroup.subtree_control'), 'utf8'), V2_ENABLE, 'and in the parent')
  const dir = join(root, 'airlock', 'airlock-job_1')
  t.equal(await readFile(join(dir, 'memory.max'), 'utf8'), String(limits.memoryBytes))
  t.equal(await readFile(join(dir, 'memory.swap.max'), 'utf8'), '0')
  t.equal(await readFile(join(dir, 'pids.max'), 'utf8'), '512')
  t.equal(await readFile(join(dir, 'cpu.max'), 'utf8'), '150000 100000')
  t.same(await host!.children('airlock'), ['airlock-job_1'])

  t.equal(await sandbox.oomKills(), 0, 'no memory.events yet: no kills')
  await writeFile(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n')
  await writeFile(join(dir, 'pids.events'), 'max 4\n')
  t.equal(await sandbox.oomKills(), 1, 'the kernel killed the sandbox for memory')
  t.equal(await sandbox.threadRefusals(), 4, 'and refused it 4 threads')

  // A parent that already enables them is left as it is.
  await writeFile(join(root, 'airlock', 'cgroup.subtree_control'), 'cpu memory pids io\n')
  await host!.sandbox('/airlock/airlock-job_2').create(limits)
  t.equal(await readFile(join(root, 'airlock', 'cgroup.subtree_control'), 'utf8'), 'cpu memory pids io\n')

  for (const job of ['airlock-job_1', 'airlock-job_2']) {
    for (const f of await readdir(join(root, 'airlock', job))) await unlink(join(root, 'airlock', job, f))
  }
  await mkdir(join(dir, 'nested'))
  await sandbox.remove()
  t.same(
    await host!.children('airlock'),
    ['airlock-job_2'],
    'removal takes the sandbox and what is below it, nothing else',
  )
})

t.test('a v2 hierarchy without our controllers is named as the problem', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'airlock-fake-cgroup2-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await writeFile(join(root, 'cgroup.controllers'), 'cpuset io memory\n')
  const host = await hostCgroups(root)
  t.match(await host?.problem(), /does not offer the pids, cpu controllers/)
})

t.test('a root with neither hierarchy has no cgroups for sandboxes', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'airlock-no-cgroup-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  t.equal(await cgroupVersion(root), undefined)
  t.equal(await hostCgroups(root), undefined)
  await mkdir(join(root, 'memory'))
  await writeFile(join(root, 'memory', 'tasks'), '')
  t.equal(await cgroupVersion(root), 'v1', 'a memory controller mounted on its own means v1')
  t.match(await (await hostCgroups(root))?.problem(), /controller "pids" is not mounted/)
})
