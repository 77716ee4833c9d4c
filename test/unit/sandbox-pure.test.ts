import { randomBytes } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../core/config.js'
import { resolveJobSpec, type JobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { buildOciConfig, JOB_FILES_MOUNT, SANDBOX_UID, WORKSPACE } from '../../worker/executors/local/oci-bundle.js'
import { hostThreadLimit } from '../../worker/executors/local/local-executor.js'
import { withoutHostPaths } from '../../core/public-text.js'
import { classifyEnd, executorFailureReason, localHostKill, type SandboxEnd } from '../../worker/executors/outcome.js'
import { ExecutorError } from '../../worker/executors/executor.js'
import { CappedOutput, utf8Boundary } from '../../worker/executors/output-capture.js'
import { LauncherReportFilter, type ReportLine } from '../../worker/executors/kubernetes/launcher-report.js'
import {
  LAUNCHER_REPORT,
  SANDBOX_FIXED_ENV,
  sandboxArgv,
  sandboxEnv,
  WARM_JOB,
  warmJobFiles,
  warmJobStream,
  warmLauncherArgv,
  warmStreamLauncherArgv,
} from '../../worker/executors/sandbox-process.js'

t.test('the OCI config carries every sandbox restriction', async (t) => {
  const spec = resolveJobSpec(
    {
      runtime: 'python',
      source: 'print(1)',
      args: ['a'],
      env: { X: '1' },
      limits: { memoryMb: 128, cpus: 0.5, pids: 10 },
    },
    loadConfig({}),
  )
  const config = buildOciConfig({
    spec,
    runtime: findRuntime('python')!,
    rootfsPath: '/images/default/rootfs',
    jobFilesPath: '/bundle/files',
    cgroupsPath: '/airlock/x',
    workspaceMb: 32,
    network: 'none',
  }) as any
  t.same(config.root, { path: '/images/default/rootfs', readonly: true })
  t.equal(config.process.user.uid, SANDBOX_UID)
  t.not(config.process.user.uid, 0)
  t.equal(config.process.noNewPrivileges, true)
  for (const set of Object.values(config.process.capabilities)) t.same(set, [])
  t.same(config.process.args.slice(-3), ['python3', 'main.py', 'a'])
  t.equal(config.process.cwd, WORKSPACE)
  t.ok(config.process.env.includes('X=1'))
  t.notOk(
    config.process.env.some((e: string) => e.startsWith('REDIS_URL=') || e.startsWith('AIRLOCK_')),
    'no worker environment leaks in',
  )
  t.equal(
    config.process.args[2],
    'cp -R /airlock/job/. /workspace/ && exec "$@"',
    'the env is data in the OCI config, never shell text',
  )
  t.same(
    config.process.rlimits.find((r: any) => r.type === 'RLIMIT_NPROC'),
    { type: 'RLIMIT_NPROC', hard: 10, soft: 10 },
  )
  t.equal(config.linux.resources.memory.limit, 128 * 1024 * 1024)
  t.same(config.linux.resources.cpu, { quota: 50_000, period: 100_000 })
  t.equal(config.linux.cgroupsPath, '/airlock/x')
  t.ok(
    config.linux.namespaces.some((n: any) => n.type === 'network' && !n.path),
    'a new network namespace',
  )
  const mounts = new Map(config.mounts.map((m: any) => [m.destination, m]))
  t.ok((mounts.get(WORKSPACE) as any).options.includes('size=32m'), 'workspace tmpfs is size-limited')
  t.ok((mounts.get('/tmp') as any).options.includes('size=32m'), '/tmp tmpfs is size-limited')
  t.ok((mounts.get(JOB_FILES_MOUNT) as any).options.includes('ro'), 'job files are mounted read-only')
  t.notOk(
    [...mounts.keys()].some((d) => d === '/root' || d === '/home' || d === '/etc'),
    'no host directories beyond the job files',
  )
})

const base: SandboxEnd = {
  exitStatus: 0,
  timedOut: false,
  cancelled: false,
  oomKills: 0,
  timeoutMs: 1000,
  memoryMb: 64,
}

t.test('a sandbox end maps to the job status', async (t) => {
  t.match(classifyEnd(base), { status: 'succeeded', exitCode: 0, signal: null })
  t.match(classifyEnd({ ...base, exitStatus: 3 }), {
    status: 'failed',
    exitCode: 3,
    signal: null,
    reason: 'exited with code 3',
  })
  t.match(classifyEnd({ ...base, exitStatus: 137 }), { status: 'failed', exitCode: null, signal: 'SIGKILL' })
  t.match(classifyEnd({ ...base, exitStatus: 137, timedOut: true }), { status: 'timeout', signal: 'SIGKILL' })
  t.match(classifyEnd({ ...base, exitStatus: 137, oomKills: 1 }), { status: 'oom', reason: /64 MiB/ })
  t.match(classifyEnd({ ...base, exitStatus: 137, cancelled: true, timedOut: true }), { status: 'cancelled' })
  t.match(classifyEnd({ ...base, exitStatus: null }), { status: 'error' })
})

t.test('a sandbox the host stopped is an error of ours, not the program failing', async (t) => {
  const threads = localHostKill({ threadRefusals: 3, threadLimit: hostThreadLimit(10), runtimeSignal: null })
  t.match(threads, /host's limit of 296 threads/)
  // The Go runtime exits with 2 when it cannot get a thread: runsc's status, not the program's.
  for (const exitStatus of [2, 1, 137, 139, 255, null]) {
    const end = classifyEnd({ ...base, exitStatus, hostKill: threads })
    t.equal(end.status, 'error', `status ${exitStatus}`)
    t.equal(end.exitCode, null, 'no exit code is claimed for the program')
    t.match(end.reason, /^the host stopped the sandbox: the sandbox reached the host's limit of 296 threads/)
  }
  t.match(
    classifyEnd({ ...base, exitStatus: 137, hostKill: threads }),
    { signal: 'SIGKILL' },
    'the signal that ended it is still told',
  )

  const killed = localHostKill({ threadRefusals: 0, threadLimit: 296, runtimeSignal: 'SIGKILL' })
  t.match(classifyEnd({ ...base, exitStatus: null, hostKill: killed }), {
    status: 'error',
    reason: /host stopped the sandbox: the sandbox runtime was killed by SIGKILL on the host/,
  })
  t.equal(localHostKill({ threadRefusals: 0, threadLimit: 296, runtimeSignal: null }), null, 'a sandbox left alone')
  t.match(
    classifyEnd({ ...base, exitStatus: 2, hostKill: null }),
    { status: 'failed', exitCode: 2 },
    "without the host's doing, exit 2 is the program's",
  )

  t.match(
    classifyEnd({ ...base, exitStatus: 0, hostKill: threads }),
    { status: 'succeeded' },
    'a program that ran to its end succeeded',
  )
  t.match(
    classifyEnd({ ...base, exitStatus: 137, timedOut: true, hostKill: threads }),
    { status: 'timeout' },
    "the job's time limit wins",
  )
  t.match(
    classifyEnd({ ...base, exitStatus: 137, cancelled: true, hostKill: threads }),
    { status: 'cancelled' },
    'a cancel wins',
  )
  t.match(
    classifyEnd({ ...base, exitStatus: 137, oomKills: 1, hostKill: threads }),
    { status: 'oom' },
    "the job's memory limit wins",
  )
})

t.test("an executor's failure reaches the job as a fixed sentence and an errno code, never its message", async (t) => {
  const pid = 48213
  const enametoolong = Object.assign(
    new Error(
      `ENAMETOOLONG: name too long, open '/run/airlock/workers/${pid}/bundles/airlock-job_x/files/${'a'.repeat(300)}'`,
    ),
    {
      code: 'ENAMETOOLONG',
      errno: -36,
      path: `/run/airlock/workers/${pid}/bundles/airlock-job_x/files/a`,
    },
  )
  const cases: [unknown, RegExp][] = [
    [enametoolong, /\(ENAMETOOLONG\)/],
    [
      new ExecutorError(
        `runsc could not start the sandbox (exit 1): /run/airlock/workers/${pid}/runsc: permission denied`,
      ),
      /^the sandbox could not be run: [^()]*$/,
    ],
    [
      new ExecutorError('the Kubernetes Job could not be created: boom', {
        cause: Object.assign(new Error('x'), { code: 'ENOSPC' }),
      }),
      /\(ENOSPC\)/,
    ],
    [
      Object.assign(new Error(`bad /run/airlock/${pid}`), { code: 'ERR_INVALID_ARG_TYPE' }),
      /^the sandbox could not be run: [^()]*$/,
    ],
    [Object.assign(new Error('api'), { code: 500 }), /^the sandbox could not be run: [^()]*$/],
    ['a string thrown', /^the sandbox could not be run/],
    [undefined, /^the sandbox could not be run/],
  ]
  for (const [err, expected] of cases) {
    const reason = executorFailureReason(err)
    t.match(reason, expected)
    t.notMatch(
      reason,
      /\/run|airlock\/workers|48213|permission|boom|bad/,
      `no host path, pid or message text in ${JSON.stringify(reason)}`,
    )
  }
})

t.test("absolute paths are taken out of the node's messages", async (t) => {
  t.equal(withoutHostPaths('open /run/containerd/x/log.json: no such file'), 'open …: no such file')
  t.equal(withoutHostPaths('mount "/var/lib/kubelet/pods/1/volumes/x" failed'), 'mount "…" failed')
  t.equal(withoutHostPaths('/leading/path at start, (in /parens) and key=/v'), '… at start, (in …) and key=…')
  t.equal(
    withoutHostPaths('image r/default@sha256:abc not found; 3/4 nodes'),
    'image r/default@sha256:abc not found; 3/4 nodes',
    'relative names stay',
  )
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

t.test('the cap counts output as it is stored, and what is passed on live is what is kept', async (t) => {
  // Found by review 18: each byte that is not UTF-8 is stored as U+FFFD (three bytes), and
  // the cap counted the bytes written, so a job of 0xff bytes stored three times its cap;
  // and a character left incomplete at the end was in the stored text (as U+FFFD) but not
  // in the live log, so the record kept a second copy of the whole output.
  const flood = new CappedOutput(1000)
  let live = ''
  for (let i = 0; i < 10; i++) live += flood.push(Buffer.alloc(500, 0xff))
  t.equal(flood.truncated, true)
  t.ok(Buffer.byteLength(flood.text()) <= 1000, `${Buffer.byteLength(flood.text())} bytes stored for a cap of 1000`)
  t.equal(flood.text(), '\uFFFD'.repeat(333), 'as many whole U+FFFD as fit')
  t.equal(live, flood.text(), 'passed on live as kept')
  const ends = new CappedOutput(100)
  const passed = [ends.push(Buffer.from('abc')), ends.push(Buffer.from([0xe2, 0x82]))]
  t.equal(ends.text(), 'abc', 'a character incomplete at the end is dropped')
  t.same(passed, ['abc', ''], 'from the live log too')
  t.equal(ends.truncated, false)
  // Any bytes, cut anywhere: the live pieces are the stored text, within the cap.
  for (let round = 0; round < 200; round++) {
    const cap = 1 + Math.floor(Math.random() * 300)
    const out = new CappedOutput(cap)
    let seen = ''
    for (let i = 0; i < 20; i++) seen += out.push(randomBytes(Math.floor(Math.random() * 40)))
    if (seen !== out.text() || Buffer.byteLength(seen) > cap) {
      t.fail(`round ${round}: cap ${cap}, ${Buffer.byteLength(out.text())} bytes kept, live ${seen === out.text()}`)
      return
    }
  }
  t.pass('200 rounds of random bytes: live pieces equal the stored text, within the cap')
})

t.test('output written a byte at a time is kept in blocks, not one object per byte', async (t) => {
  // Found by the fifteenth review: a program writing a byte at a time is read a byte at a
  // time, and each piece was kept as an object of its own until the job ended.
  const text = 'é, a€ and 😀 '.repeat(20_000)
  const bytes = Buffer.from(text)
  const out = new CappedOutput(bytes.length + 10)
  for (let i = 0; i < bytes.length; i++) out.push(bytes.subarray(i, i + 1))
  t.equal(out.text(), text, 'every byte, in order')
  const held = (out as unknown as { blocks: string[] }).blocks.length
  // The first blocks are 4, 4, 8, 16 and 32 KiB (a short output holds no 64 KiB), then 64 KiB each.
  t.ok(held <= 5 + Math.ceil(bytes.length / 65_536), `${bytes.length} pieces held as ${held} blocks`)
  // Big pieces, small ones between them, and the cap within a block: the same bytes.
  const mixed = new CappedOutput(200_000)
  const parts = [Buffer.alloc(100_000, 'a'), Buffer.from('bc'), Buffer.alloc(70_000, 'd'), Buffer.alloc(50_000, 'e')]
  for (const p of parts) mixed.push(p)
  t.equal(mixed.truncated, true)
  t.equal(mixed.text(), Buffer.concat(parts).subarray(0, 200_000).toString())
})

/**
 * The Kubernetes launcher's own script for a bash program, to be run by this
 * machine's dash with the sandbox's paths moved under a temporary directory: the FIFO
 * plumbing is what is under test, not the sandbox.
 */
async function cappedLauncher(
  t: { teardown(fn: () => unknown): void },
  program: string,
  stdin: string,
  capOutputBytes: number,
): Promise<{ args: string[]; cwd: string }> {
  const root = await mkdtemp(join(tmpdir(), 'airlock-launcher-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await mkdir(join(root, 'job/files'), { recursive: true })
  await mkdir(join(root, 'workspace'))
  await writeFile(join(root, 'job/stdin'), stdin)
  await writeFile(join(root, 'job/files/main.sh'), program)
  const spec = resolveJobSpec({ runtime: 'bash', source: 'x' }, loadConfig({}))
  const argv = sandboxArgv({ ...spec, entrypoint: 'main.sh' }, findRuntime('bash')!, {
    filesSubdir: 'files',
    stdinFile: 'stdin',
    capOutputBytes,
  })
  const script = argv[2]!
    .replaceAll(`${JOB_FILES_MOUNT}/`, `${root}/job/`)
    .replaceAll(`${WORKSPACE}/`, `${root}/workspace/`)
  return { args: ['-c', script, ...argv.slice(3)], cwd: join(root, 'workspace') }
}

/** A stream of the capped launcher as the executor reads it: the program's bytes, and the launcher's report. */
function reported(stream: Buffer | Buffer[]): { text: string; lines: ReportLine[] } {
  const out: Buffer[] = []
  const lines: ReportLine[] = []
  const filter = new LauncherReportFilter(
    (b) => out.push(b),
    (l) => lines.push(l),
  )
  for (const chunk of Array.isArray(stream) ? stream : [stream]) filter.write(chunk)
  filter.flush()
  return { text: Buffer.concat(out).toString(), lines }
}

t.test(
  "the capped launcher keeps the program's exit status and the first bytes of each stream, and drains the rest",
  async (t) => {
    const { args, cwd } = await cappedLauncher(
      t,
      'read line; echo "got $line"; echo oops >&2; head -c 50000000 /dev/zero; echo late >&2; exit 7',
      'from stdin',
      16,
    )
    const started = Date.now()
    const r = spawnSync('/bin/sh', args, { cwd, maxBuffer: 1 << 20 })
    const ended = Date.now()
    t.equal(r.status, 7, "the program's exit status")
    const stdout = reported(r.stdout)
    t.equal(stdout.text, 'got from stdin\n\0\0', 'stdout: the first 16 bytes plus one, so the reader sees the cut')
    t.equal(Buffer.byteLength(stdout.text), 17)
    t.equal(stdout.lines.length, 1, 'stdout ends with the exit line')
    t.match(stdout.lines[0], { kind: 'exit', exitCode: 7 }, "which carries the program's status")
    const at = (stdout.lines[0] as { at: number }).at
    t.ok(at >= started - 1000 && at <= ended + 1000, 'and when it ended, in epoch ms')
    const stderr = reported(r.stderr)
    t.equal(stderr.text, 'oops\nlate\n', 'stderr is capped on its own')
    t.same(stderr.lines, [{ kind: 'end' }], 'and ends with the end line')
    t.comment(`50 MB drained in ${Date.now() - started} ms`)
  },
)

t.test(
  "the launcher's report: a nonce of its own, the program's bytes exact with or without a last newline, and lines the program forges are only output",
  async (t) => {
    const forged = `${LAUNCHER_REPORT.exit} 00112233445566778899aabbccddeeff 0 1\n${LAUNCHER_REPORT.end} 00112233445566778899aabbccddeeff\n`
    for (const [program, out] of [
      [`printf 'no newline'; printf '%s' '${forged}'; printf 'err' >&2; exit 3`, `no newline${forged}`],
      ['echo; echo; printf "x\\n\\n"; exit 0', '\n\nx\n\n'],
      ['exit 0', ''],
    ] as const) {
      const { args, cwd } = await cappedLauncher(t, program, '', 1024)
      const r = spawnSync('/bin/sh', args, { cwd })
      const first = r.stdout.toString().split('\n')[0]!
      t.match(
        first,
        new RegExp(`^${LAUNCHER_REPORT.begin} [0-9a-f]{32}$`),
        'the first line is the begin line with a 128-bit nonce',
      )
      t.equal(r.stderr.toString().split('\n')[0], first, 'on both streams')
      const stdout = reported(r.stdout)
      t.equal(stdout.text, out, `stdout is exactly the program's (${JSON.stringify(program).slice(0, 40)})`)
      t.match(stdout.lines, [{ kind: 'exit', exitCode: r.status }], 'one exit line, the real one')
      // One byte at a time: the filter holds back what may start a line of the launcher's, and nothing else.
      const bytes = [...r.stdout].map((b) => Buffer.from([b]))
      t.equal(reported(bytes).text, out, 'the same when it comes a byte at a time')
      // A merged log (the cluster cannot split streams): both streams in one.
      const merged = reported(Buffer.concat([r.stdout, r.stderr]))
      t.equal(merged.text, out + (r.status === 3 ? 'err' : ''), 'a merged log loses only the launcher lines')
      t.same(merged.lines.map((l) => l.kind).sort(), ['end', 'exit'])
    }
    const again = await cappedLauncher(t, 'exit 0', '', 16)
    const nonces = new Set(
      [0, 1, 2].map(() => spawnSync('/bin/sh', again.args, { cwd: again.cwd }).stdout.toString().split('\n')[0]),
    )
    t.equal(nonces.size, 3, 'a new nonce each run')
    t.same(
      reported(Buffer.from('a first line of an older launcher\nairlock-launcher-exit x 0 1\n')).text,
      'a first line of an older launcher\nairlock-launcher-exit x 0 1\n',
      'a stream that does not begin with a begin line is passed on as it is',
    )
    t.same(
      reported(Buffer.from('x'.repeat(500))).text,
      'x'.repeat(500),
      'as is one whose long first line has no newline yet',
    )
  },
)

t.test("a program's last newline reaches a live reader within moments, not at its next output", async (t) => {
  const got: string[] = []
  const lines: ReportLine[] = []
  const filter = new LauncherReportFilter(
    (b) => got.push(b.toString()),
    (l) => lines.push(l),
    50,
  )
  const nonce = '0123456789abcdef0123456789abcdef'
  filter.write(Buffer.from(`${LAUNCHER_REPORT.begin} ${nonce}\nline 1\n`))
  t.same(got, ['line 1'], 'the newline is held: it may be the start of a launcher line')
  await new Promise((r) => setTimeout(r, 120))
  t.same(got, ['line 1', '\n'], 'and passed on when nothing follows it')
  filter.write(Buffer.from(`\n${LAUNCHER_REPORT.exit} ${nonce} 0 1700000000000000000\n`))
  filter.flush()
  t.same(got.join(''), 'line 1\n', "the launcher's own newline and line are not output")
  t.match(lines, [{ kind: 'exit', exitCode: 0, at: 1700000000000 }])
  // What looks like an exit line's start but runs on past any the launcher writes is output.
  got.length = 0
  const long = new LauncherReportFilter(
    (b) => got.push(b.toString()),
    () => undefined,
    60_000,
  )
  long.write(Buffer.from(`${LAUNCHER_REPORT.begin} ${nonce}\nx\n${LAUNCHER_REPORT.exit} ${nonce} 1 `))
  const held = got.join('')
  long.write(Buffer.from('2'.repeat(30)))
  t.ok(got.join('').length > held.length + 30, "digits past an exit line's are passed on, not held")
})

t.test('the capped launcher passes output on as it is written, not when the program ends', async (t) => {
  const { args, cwd } = await cappedLauncher(t, 'echo first; echo first-err >&2; sleep 1; echo second', '', 1024)
  const child = spawn('/bin/sh', args, { cwd })
  const arrived: Record<string, number> = {}
  // Through the executor's filter: the program's bytes pass as they come, less at most a held-back newline.
  const stdout = new LauncherReportFilter(
    (d) => (arrived[d.toString().trim().split('\n')[0]!] ??= Date.now()),
    () => undefined,
  )
  const stderr = new LauncherReportFilter(
    (d) => (arrived[d.toString().trim()] ??= Date.now()),
    () => undefined,
  )
  child.stdout.on('data', (d: Buffer) => stdout.write(d))
  child.stderr.on('data', (d: Buffer) => stderr.write(d))
  const code = await new Promise((resolve) => child.on('close', resolve))
  const ended = Date.now()
  t.equal(code, 0)
  t.ok(
    arrived.first !== undefined && ended - arrived.first >= 800,
    `stdout's first line came ${ended - arrived.first!} ms before the end`,
  )
  t.ok(arrived['first-err'] !== undefined && ended - arrived['first-err'] >= 800, "so did stderr's")
})

/**
 * A warm sandbox's launcher, run by this machine's dash with the sandbox's paths moved
 * under a temporary directory, its job laid out as the executor lays it out at the
 * claim: what is under test is that the launcher hands the program exactly its job.
 */
async function warmLauncher(
  t: { teardown(fn: () => unknown): void },
  spec: JobSpec,
): Promise<{ args: string[]; cwd: string; env: Record<string, string> }> {
  const root = await mkdtemp(join(tmpdir(), 'airlock-warm-launcher-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await mkdir(join(root, 'workspace'))
  for (const f of warmJobFiles(spec, findRuntime('bash')!)) {
    await mkdir(dirname(join(root, 'job', f.path)), { recursive: true })
    await writeFile(join(root, 'job', f.path), f.content)
  }
  const argv = warmLauncherArgv()
  const script = argv[2]!
    .replaceAll(`${JOB_FILES_MOUNT}/`, `${root}/job/`)
    .replaceAll(`${WORKSPACE}/`, `${root}/workspace/`)
  // What the sandbox boots with: the fixed environment, no job's.
  return { args: ['-c', script, ...argv.slice(3)], cwd: join(root, 'workspace'), env: sandboxEnv({ ...spec, env: {} }) }
}

t.test(
  "the warm launcher runs nothing until the go line, then exactly the job's program, argv, environment and stdin",
  async (t) => {
    const base = resolveJobSpec({ runtime: 'bash', source: 'x' }, loadConfig({}))
    // (Not IFS: bash ignores it in its environment, warm or cold.)
    const env = {
      go: 'job-go',
      p: '1',
      n: 'job-n',
      v: 'job-v',
      a: 'x y',
      l: 'tab\there',
      nl: 'two\nlines\n\n',
      LANG: 'fr_FR.UTF-8',
      EMPTY: '',
    }
    const spec: JobSpec = {
      ...base,
      entrypoint: 'main.sh',
      args: ['one arg', '--', '$HOME', 'a\nb', ''],
      env,
      limits: { ...base.limits, pids: 37 },
      files: [
        {
          path: 'main.sh',
          content:
            'for name in go p n v a l nl LANG EMPTY PATH HOME; do printf "%s=[%s]\\n" "$name" "${!name}"; done\nprintf "<%s>" "$@"; echo\ncat\nulimit -u\nls\n',
        },
        { path: 'sub/data.txt', content: 'data' },
      ],
    }
    const { args, cwd, env: bootEnv } = await warmLauncher(t, spec)
    const r = spawnSync('/bin/sh', args, { cwd, env: bootEnv, input: `go\nthe program's stdin\nline 2\n` })
    t.equal(r.stderr.toString(), '')
    t.equal(r.status, 0)
    const expected = [
      ...Object.entries(env).map(([k, v]) => `${k}=[${v}]\n`),
      `PATH=[${SANDBOX_FIXED_ENV.PATH}]\n`,
      `HOME=[${SANDBOX_FIXED_ENV.HOME}]\n`,
      '<one arg><--><$HOME><a\nb><>\n',
      "the program's stdin\nline 2\n",
      '37\n',
      'main.sh\nsub\n',
    ].join('')
    t.equal(
      r.stdout.toString(),
      expected,
      'variables named like the launcher’s own keep the job’s values; argv, stdin and the process limit are the job’s',
    )

    const noGo = spawnSync('/bin/sh', args, { cwd, env: bootEnv, input: '' })
    t.equal(noGo.status, 125, 'stdin closed without a go: exit 125')
    t.equal(noGo.stdout.toString(), '', '...having run nothing')
    const wrong = spawnSync('/bin/sh', args, { cwd, env: bootEnv, input: 'echo hi\n' })
    t.equal(wrong.status, 125, 'anything but the go line runs nothing either')
  },
)

t.test('a warm job is laid out with its argv in order past ten words, and only its own variables', async (t) => {
  const base = resolveJobSpec({ runtime: 'bash', source: 'x' }, loadConfig({}))
  const files = warmJobFiles(
    { ...base, args: Array.from({ length: 12 }, (_, i) => `a${i}`), env: { K: 'v' } },
    findRuntime('bash')!,
  )
  const argv = files.filter((f) => f.path.startsWith(`${WARM_JOB.argv}/`))
  t.same(
    argv.map((f) => f.content),
    ['bash', 'main.sh', ...Array.from({ length: 12 }, (_, i) => `a${i}`)],
  )
  t.same(
    argv.map((f) => f.path),
    [...argv.map((f) => f.path)].sort(),
    'name order is argv order',
  )
  t.same(
    files.filter((f) => f.path.startsWith(`${WARM_JOB.env}/`)).map((f) => f.content),
    ['K=v'],
    'the fixed variables are the sandbox’s own, not files',
  )
  t.same(files.find((f) => f.path === WARM_JOB.pids)?.content, `${base.limits.pids}\n`)
})

t.test(
  "a warm pod's launcher takes its whole job from stdin, byte for byte, and runs it capped under its own limits",
  async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'airlock-warm-stream-'))
    t.teardown(() => rm(root, { recursive: true, force: true }))
    await mkdir(join(root, 'job'))
    await mkdir(join(root, 'workspace'))
    const argv = warmStreamLauncherArgv({ requireSeccomp: false })
    const script = argv[2]!
      .replaceAll(`${JOB_FILES_MOUNT}/`, `${root}/job/`)
      .replaceAll(`${JOB_FILES_MOUNT}"`, `${root}/job"`)
      .replaceAll(`${WORKSPACE}/`, `${root}/workspace/`)
    const base = resolveJobSpec({ runtime: 'bash', source: 'x' }, loadConfig({}))
    const spec: JobSpec = {
      ...base,
      entrypoint: 'main.sh',
      args: ['two words', 'a\nb'],
      env: { A: 'multi\nline\n\n', e: 'launcher-named' },
      stdin: 'stdin line\nlast line without newline',
      limits: { ...base.limits, pids: 19, outputBytes: 2000 },
      files: [
        {
          path: 'main.sh',
          content:
            'printf "<%s>" "$@"; echo\nprintf "A=[%s] e=[%s]\\n" "$A" "$e"\nenv | grep -c =\ncat; echo\nulimit -u\ncat "dir with space/data.bin" | od -An -c | tr -s " "\nhead -c 5000 /dev/zero | tr "\\0" y\n',
        },
        { path: 'dir with space/data.bin', content: 'x\ny\n\n' },
      ],
    }
    const r = spawnSync('/bin/sh', ['-c', script, ...argv.slice(3)], {
      cwd: join(root, 'workspace'),
      env: { PATH: SANDBOX_FIXED_ENV.PATH!, KUBERNETES_SERVICE_HOST: '127.0.0.1' },
      input: warmJobStream(spec, findRuntime('bash')!),
    })
    t.equal(r.status, 0, r.stderr.toString())
    const out = reported(r.stdout).text
    t.ok(
      out.startsWith('<two words><a\nb>\nA=[multi\nline\n\n] e=[launcher-named]\n'),
      `argv and environment exactly the job's: ${JSON.stringify(out.slice(0, 80))}`,
    )
    t.match(
      out,
      /\n9\nstdin line\nlast line without newline\n23\n/,
      "only the job's variables and the fixed ones (6; the runtime's KUBERNETES_* dropped; bash adds PWD, SHLVL and _); its stdin; its pids limit plus the capping helpers",
    )
    t.match(out, / x \\n y \\n \\n\n/, 'a file in a directory with a space in its name, byte for byte')
    t.equal(out.length, 2001, 'stdout cut at the job’s cap (plus one byte, so the reader sees the cut)')

    const cut = warmJobStream(spec, findRuntime('bash')!)
    const partial = spawnSync('/bin/sh', ['-c', script, ...argv.slice(3)], {
      cwd: join(root, 'workspace'),
      input: cut.subarray(0, cut.length - spec.stdin.length - 20),
    })
    t.equal(partial.status, 125, 'a job cut short runs nothing')
    t.equal(partial.stdout.toString(), '')
  },
)
