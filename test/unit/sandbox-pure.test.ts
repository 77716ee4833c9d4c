import { spawn, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../core/config.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { buildOciConfig, JOB_FILES_MOUNT, SANDBOX_UID, WORKSPACE } from '../../worker/executors/local/oci-bundle.js'
import { classifyEnd, type SandboxEnd } from '../../worker/executors/outcome.js'
import { CappedOutput, utf8Boundary } from '../../worker/executors/output-capture.js'
import { sandboxArgv } from '../../worker/executors/sandbox-process.js'

t.test('the OCI config carries every sandbox restriction', async (t) => {
  const spec = resolveJobSpec({ runtime: 'python', source: 'print(1)', args: ['a'], env: { X: '1' }, limits: { memoryMb: 128, cpus: 0.5, pids: 10 } }, loadConfig({}))
  const config = buildOciConfig({ spec, runtime: findRuntime('python')!, rootfsPath: '/images/default/rootfs', jobFilesPath: '/bundle/files', cgroupsPath: '/airlock/x', workspaceMb: 32, network: 'none' }) as any
  t.same(config.root, { path: '/images/default/rootfs', readonly: true })
  t.equal(config.process.user.uid, SANDBOX_UID)
  t.not(config.process.user.uid, 0)
  t.equal(config.process.noNewPrivileges, true)
  for (const set of Object.values(config.process.capabilities)) t.same(set, [])
  t.same(config.process.args.slice(-3), ['python3', 'main.py', 'a'])
  t.equal(config.process.cwd, WORKSPACE)
  t.ok(config.process.env.includes('X=1'))
  t.notOk(config.process.env.some((e: string) => e.startsWith('REDIS_URL=') || e.startsWith('AIRLOCK_')), 'no worker environment leaks in')
  t.same(config.process.rlimits.find((r: any) => r.type === 'RLIMIT_NPROC'), { type: 'RLIMIT_NPROC', hard: 10, soft: 10 })
  t.equal(config.linux.resources.memory.limit, 128 * 1024 * 1024)
  t.same(config.linux.resources.cpu, { quota: 50_000, period: 100_000 })
  t.equal(config.linux.cgroupsPath, '/airlock/x')
  t.ok(config.linux.namespaces.some((n: any) => n.type === 'network' && !n.path), 'a new network namespace')
  const mounts = new Map(config.mounts.map((m: any) => [m.destination, m]))
  t.ok((mounts.get(WORKSPACE) as any).options.includes('size=32m'), 'workspace tmpfs is size-limited')
  t.ok((mounts.get('/tmp') as any).options.includes('size=32m'), '/tmp tmpfs is size-limited')
  t.ok((mounts.get(JOB_FILES_MOUNT) as any).options.includes('ro'), 'job files are mounted read-only')
  t.notOk([...mounts.keys()].some((d) => d === '/root' || d === '/home' || d === '/etc'), 'no host directories beyond the job files')
})

const base: SandboxEnd = { exitStatus: 0, timedOut: false, cancelled: false, oomKills: 0, timeoutMs: 1000, memoryMb: 64 }

t.test('a sandbox end maps to the job status', async (t) => {
  t.match(classifyEnd(base), { status: 'succeeded', exitCode: 0, signal: null })
  t.match(classifyEnd({ ...base, exitStatus: 3 }), { status: 'failed', exitCode: 3, signal: null, reason: 'exited with code 3' })
  t.match(classifyEnd({ ...base, exitStatus: 137 }), { status: 'failed', exitCode: null, signal: 'SIGKILL' })
  t.match(classifyEnd({ ...base, exitStatus: 137, timedOut: true }), { status: 'timeout', signal: 'SIGKILL' })
  t.match(classifyEnd({ ...base, exitStatus: 137, oomKills: 1 }), { status: 'oom', reason: /64 MiB/ })
  t.match(classifyEnd({ ...base, exitStatus: 137, cancelled: true, timedOut: true }), { status: 'cancelled' })
  t.match(classifyEnd({ ...base, exitStatus: null }), { status: 'error' })
})

t.test('output is capped per stream without splitting a UTF-8 character', async (t) => {
  const out = new CappedOutput(5)
  out.push(Buffer.from('abcd'))
  out.push(Buffer.from('é!')) // 'é' is two bytes; only one fits
  t.equal(out.truncated, true)
  t.equal(out.text(), 'abcd')
  const exact = new CappedOutput(4)
  exact.push(Buffer.from('abcd'))
  t.equal(exact.truncated, false)
  exact.push(Buffer.alloc(0))
  t.equal(exact.truncated, false)
  exact.push(Buffer.from('e'))
  t.equal(exact.truncated, true)
  t.equal(utf8Boundary(Buffer.from('a€')), 4)
  t.equal(utf8Boundary(Buffer.from('a€').subarray(0, 3)), 1)
  t.equal(utf8Boundary(Buffer.from('😀').subarray(0, 2)), 0)
})

/**
 * The Kubernetes launcher's own script for a bash program, to be run by this
 * machine's dash with the sandbox's paths moved under a temporary directory: the FIFO
 * plumbing is what is under test, not the sandbox.
 */
async function cappedLauncher(t: { teardown(fn: () => unknown): void }, program: string, stdin: string, capOutputBytes: number): Promise<{ args: string[]; cwd: string }> {
  const root = await mkdtemp(join(tmpdir(), 'airlock-launcher-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await mkdir(join(root, 'job/files'), { recursive: true })
  await mkdir(join(root, 'workspace'))
  await writeFile(join(root, 'job/stdin'), stdin)
  await writeFile(join(root, 'job/files/main.sh'), program)
  const spec = resolveJobSpec({ runtime: 'bash', source: 'x' }, loadConfig({}))
  const argv = sandboxArgv({ ...spec, entrypoint: 'main.sh' }, findRuntime('bash')!, { filesSubdir: 'files', stdinFile: 'stdin', capOutputBytes })
  const script = argv[2]!.replaceAll(`${JOB_FILES_MOUNT}/`, `${root}/job/`).replaceAll(`${WORKSPACE}/`, `${root}/workspace/`)
  return { args: ['-c', script, ...argv.slice(3)], cwd: join(root, 'workspace') }
}

t.test("the capped launcher keeps the program's exit status and the first bytes of each stream, and drains the rest", async (t) => {
  const { args, cwd } = await cappedLauncher(t, 'read line; echo "got $line"; echo oops >&2; head -c 50000000 /dev/zero; echo late >&2; exit 7', 'from stdin', 16)
  const started = Date.now()
  const r = spawnSync('/bin/sh', args, { cwd, maxBuffer: 1 << 20 })
  t.equal(r.status, 7, "the program's exit status")
  t.equal(r.stdout.toString(), 'got from stdin\n\0\0', 'stdout: the first 16 bytes plus one, so the reader sees the cut')
  t.equal(r.stdout.length, 17)
  t.equal(r.stderr.toString(), 'oops\nlate\n', 'stderr is capped on its own')
  t.comment(`50 MB drained in ${Date.now() - started} ms`)
})

t.test('the capped launcher passes output on as it is written, not when the program ends', async (t) => {
  const { args, cwd } = await cappedLauncher(t, 'echo first; echo first-err >&2; sleep 1; echo second', '', 1024)
  const child = spawn('/bin/sh', args, { cwd })
  const arrived: Record<string, number> = {}
  child.stdout.on('data', (d: Buffer) => (arrived[d.toString().trim().split('\n')[0]!] ??= Date.now()))
  child.stderr.on('data', (d: Buffer) => (arrived[d.toString().trim()] ??= Date.now()))
  const code = await new Promise((resolve) => child.on('close', resolve))
  const ended = Date.now()
  t.equal(code, 0)
  t.ok(arrived.first !== undefined && ended - arrived.first >= 800, `stdout's first line came ${ended - arrived.first!} ms before the end`)
  t.ok(arrived['first-err'] !== undefined && ended - arrived['first-err'] >= 800, "so did stderr's")
})
