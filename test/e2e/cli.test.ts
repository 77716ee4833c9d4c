import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build, TENANTS } from '../helper.js'

// Every check here starts the CLI as its own Node process (1.6-2.1 s each on this
// 2-core machine), dozens of times: the file runs close to tap's default 180 s.
t.setTimeout(6 * 60_000)

const CLI = new URL('../../dist/bin/airlock.js', import.meta.url).pathname
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (scripts/test.sh does)`)

const h = await build(t, { listen: true })
const dir = await mkdtemp(join(tmpdir(), 'airlock-cli-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

interface Result {
  code: number | null
  stdout: string
  stderr: string
  /** When stdout first received something, ms after the start. */
  firstStdoutMs: number | null
  ms: number
}

/** `tty`: the CLI's stdout and stderr are a terminal (util-linux's `script` gives it one), and `stdout` is what it showed. */
function airlock(
  args: string[],
  options: { env?: Record<string, string>; input?: string; tty?: boolean } = {},
): Promise<Result> {
  const t0 = Date.now()
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const [file, argv] = options.tty ? ['script', ['-qec', command, '/dev/null']] : [process.execPath, [CLI, ...args]]
  const child = spawn(file, argv, {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      AIRLOCK_URL: h.baseUrl,
      AIRLOCK_API_KEY: TENANTS.alice,
      ...options.env,
    },
  })
  let stdout = ''
  let stderr = ''
  let firstStdoutMs: number | null = null
  child.stdout.on('data', (d: Buffer) => {
    firstStdoutMs ??= Date.now() - t0
    stdout += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  child.stdin.end(options.input ?? '')
  return new Promise((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr, firstStdoutMs, ms: Date.now() - t0 })),
  )
}

async function file(name: string, content: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, content)
  return path
}

t.test('airlock run streams stdout and stderr apart, as the program runs, and exits with its code', async (t) => {
  const prog = await file(
    'ticks.py',
    'import sys, time\nfor i in range(4):\n    print("tick", i, flush=True)\n    time.sleep(0.4)\nprint("warn", file=sys.stderr)\nsys.exit(3)\n',
  )
  const r = await airlock(['run', prog])
  t.equal(r.code, 3, "the program's exit code")
  t.equal(r.stdout, 'tick 0\ntick 1\ntick 2\ntick 3\n')
  t.match(r.stderr, /warn\n/)
  t.ok(
    r.firstStdoutMs !== null && r.firstStdoutMs < r.ms - 800,
    `output arrived while the job ran (first at ${r.firstStdoutMs} ms of ${r.ms} ms)`,
  )
})

t.test('airlock run: arguments, --stdin, --env, and --json', async (t) => {
  const prog = await file('echo.sh', 'read line; echo "$line $1 $GREETING"')
  const input = await file('input.txt', 'hello\n')
  const r = await airlock(['run', prog, '--stdin', input, '--env', 'GREETING=hi', '--', 'world'])
  t.equal(r.code, 0)
  t.equal(r.stdout, 'hello world hi\n')
  const piped = await airlock(['run', prog, '--stdin', '-', '--json'], { input: 'from-pipe\n' })
  t.equal(piped.code, 0)
  t.match(JSON.parse(piped.stdout), { status: 'succeeded', stdout: 'from-pipe  \n' })
})

t.test('airlock run compiles by extension, shows a compile error, and runs test cases from a file', async (t) => {
  const broken = await file('broken.cpp', 'int main() { return nope; }\n')
  const bad = await airlock(['run', broken])
  t.equal(bad.code, 1, 'a failed compile exits 1')
  t.match(bad.stderr, /nope/, "the compiler's message")
  t.match(bad.stderr, /airlock: the compile failed; nothing was run/)
  t.equal(bad.stdout, '')
  const double = await file(
    'double.c',
    '#include <stdio.h>\nint main() { int n; scanf("%d", &n); printf("%d\\n", 2 * n); }\n',
  )
  const cases = await file(
    'cases.json',
    JSON.stringify([
      { stdin: '2', expectedOutput: '4' },
      { stdin: '5', expectedOutput: '11' },
    ]),
  )
  const r = await airlock(['run', double, '--tests', cases])
  t.equal(r.code, 1, 'a case that does not pass exits 1')
  t.equal(r.stdout, '4\n10\n', "each case's output, in order")
  t.match(r.stderr, /airlock: test case 1: passed, \d+ ms\nairlock: test case 2: wrong-answer, \d+ ms/)
})

t.test('airlock run --idempotency-key runs a program once however often the command is run', async (t) => {
  const prog = await file('once.sh', 'echo "ran at $(date +%s%N)"')
  const key = `cli-${process.pid}-${Date.now()}`
  const first = await airlock(['run', prog, '--idempotency-key', key, '--json'])
  const again = await airlock(['run', prog, '--idempotency-key', key, '--json'])
  t.equal(first.code, 0)
  t.equal(again.code, 0, 'run again with the key, the command follows the job and exits with its code')
  const [a, b] = [JSON.parse(first.stdout), JSON.parse(again.stdout)] as { id: string; stdout: string }[]
  t.equal(b!.id, a!.id, 'the second run is the job the first made')
  t.equal(b!.stdout, a!.stdout, 'whose output is from its one run')
  const other = await file('other.sh', 'echo other')
  const reused = await airlock(['run', other, '--idempotency-key', key])
  t.not(reused.code, 0, 'another program under the key is refused')
  t.match(reused.stderr, /AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED/)
  t.equal(reused.stdout, '', 'and nothing ran')
})

t.test('airlock run exits 124 on timeout and 125 on oom', async (t) => {
  const loop = await file('loop.js', 'for (;;) {}')
  const timeout = await airlock(['run', loop, '--timeout', '1s'])
  t.equal(timeout.code, 124)
  t.match(timeout.stderr, /timeout: exceeded the time limit of 1000 ms/)
  const hog = await file('hog.py', 'x = bytearray(512 * 1024 * 1024)\nprint(len(x))\n')
  const oom = await airlock(['run', hog, '--memory', '64'])
  t.equal(oom.code, 125)
})

t.test('airlock jobs list, get, logs and cancel; airlock runtimes', async (t) => {
  const prog = await file('hello.sh', 'echo hello-cli')
  const run = await airlock(['run', prog, '--json'])
  const { id } = JSON.parse(run.stdout) as { id: string }
  const list = JSON.parse((await airlock(['jobs', 'list', '--json'])).stdout) as { items: { id: string }[] }
  t.ok(
    list.items.some((j) => j.id === id),
    'listed',
  )
  const table = await airlock(['jobs', 'list', '--limit', '1'])
  t.match(table.stdout, new RegExp(`^ID +STATUS +RUNTIME +EXIT +CREATED\\n${id} +succeeded +bash +0 `))
  t.match(JSON.parse((await airlock(['jobs', 'get', id, '--json'])).stdout), {
    id,
    status: 'succeeded',
    stdout: 'hello-cli\n',
  })
  t.match((await airlock(['jobs', 'get', id])).stdout, /status: +succeeded[\s\S]*--- stdout\nhello-cli/)
  t.equal((await airlock(['jobs', 'logs', id])).stdout, 'hello-cli\n')
  t.equal((await airlock(['jobs', 'logs', id, '--follow'])).stdout, 'hello-cli\n')
  const runtimes = JSON.parse((await airlock(['runtimes', '--json'])).stdout) as { name: string }[]
  t.same(runtimes.map((r) => r.name).sort(), ['bash', 'c', 'cpp', 'go', 'java', 'ml-python', 'node', 'python', 'rust'])

  const { id: sleeper } = (await (
    await fetch(`${h.baseUrl}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TENANTS.alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ runtime: 'bash', source: 'sleep 30' }),
    })
  ).json()) as { id: string }
  const cancel = await airlock(['jobs', 'cancel', sleeper])
  t.equal(cancel.code, 0)
  t.match(cancel.stdout, new RegExp(`^${sleeper}: `))
  t.equal((await h.poll(sleeper, (j) => j.status === 'cancelled')).status, 'cancelled')
  const again = await airlock(['jobs', 'cancel', sleeper])
  t.equal(again.code, 3, 'cancelling an ended job: its own exit code, not a failure of the CLI (70)')
  t.match(again.stderr, /AIRLOCK_ERR_JOB_FINISHED/)
})

t.test("on a terminal, a job's control sequences are dropped from what the CLI prints; --raw keeps them", async (t) => {
  // Found by review 21: a job's output went to the terminal as it came, so a job could write
  // the clipboard (OSC 52, and a paste runs it), the window title, or move the cursor.
  const prog = await file(
    'hostile.py',
    [
      'import sys',
      'sys.stdout.write("a\\x1b]52;c;Y3VybCBldmlsfHNoCg==\\x07b\\x1b]0;pwned\\x1b\\\\c\\x1b[2K\\x1b[31mred\\x1b[0m\\n")',
      'sys.stderr.write("e\\x1b]0;pwned\\x07f\\x9b2J\\n")',
      'sys.exit(2)',
    ].join('\n'),
  )
  const shown = await airlock(['run', prog], { tty: true })
  t.equal(shown.code, 2, "the program's exit code")
  t.match(shown.stdout, /abc\x1b\[31mred\x1b\[0m\r\n/, 'its text and colours are shown')
  t.match(shown.stdout, /ef\r\n/)
  t.notMatch(shown.stdout, /\x1b[\]P_^X]|\x1b\[2K|\x9b|\u009b|pwned|Y3Vyb/, 'no other sequence, nor what it carried')
  const run = await airlock(['run', prog, '--json'])
  const { id } = JSON.parse(run.stdout) as { id: string }
  for (const args of [
    ['jobs', 'get', id],
    ['jobs', 'logs', id],
    ['jobs', 'logs', id, '--follow'],
    ['jobs', 'get', id, '--json'],
  ]) {
    const r = await airlock(args, { tty: true })
    t.equal(r.code, 0, args.join(' '))
    t.match(r.stdout, /red/, `${args.join(' ')}: the text is shown`)
    t.notMatch(r.stdout, /\x1b[\]P_^X]|\x1b\[2K|\x9b|\u009b/, `${args.join(' ')}: no sequence`)
  }
  const raw = await airlock(['--raw', 'run', prog], { tty: true })
  t.match(raw.stdout, /\x1b\]52;c;Y3VybCBldmlsfHNoCg==\x07/, '--raw: as it came')
  const piped = await airlock(['run', prog])
  t.match(piped.stdout, /\x1b\]52;c;/, 'into a pipe: as it came')
})

t.test('airlock jobs submit queues a JSON array of jobs in one request and says which were refused', async (t) => {
  const jobs = await file(
    'jobs.json',
    JSON.stringify([
      { runtime: 'bash', source: 'echo from-batch' },
      { runtime: 'cobol', source: 'x' },
    ]),
  )
  const r = await airlock(['jobs', 'submit', jobs])
  t.equal(r.code, 65, 'a refused job makes it exit 65')
  const [head, first, second] = r.stdout.trim().split('\n')
  t.match(head, /^# +JOB +REFUSED$/)
  const id = /^0 +(job_[0-9a-f]{32})/.exec(first ?? '')?.[1]
  t.ok(id, 'the accepted job by its id')
  t.match(second, /^1 +- +AIRLOCK_ERR_UNKNOWN_RUNTIME: unknown runtime "cobol"/)
  t.equal((await h.poll(id!, (j) => j.status === 'succeeded')).stdout, 'from-batch\n')
  const piped = await airlock(['jobs', 'submit', '-', '--json'], {
    input: JSON.stringify([{ runtime: 'bash', source: 'true' }]),
  })
  t.equal(piped.code, 0)
  t.equal(JSON.parse(piped.stdout).accepted, 1, 'from stdin, as JSON')
  const key = `cli-batch-${process.pid}-${Date.now()}`
  const once = JSON.stringify([{ runtime: 'bash', source: 'echo keyed' }])
  const [k1, k2] = [
    await airlock(['jobs', 'submit', '-', '--json', '--idempotency-key', key], { input: once }),
    await airlock(['jobs', 'submit', '-', '--json', '--idempotency-key', key], { input: once }),
  ].map((r) => JSON.parse(r.stdout) as { items: { id: string; replayed?: boolean }[] })
  t.equal(k2!.items[0]!.id, k1!.items[0]!.id, 'submitted again with its key, the batch answers the job it made')
  t.equal(k2!.items[0]!.replayed, true, 'and says it was made before')
  const bad = await airlock(['jobs', 'submit', await file('notjobs.json', '{"runtime":"bash"}')])
  t.equal(bad.code, 64)
  t.match(bad.stderr, /must hold a JSON array/)
})

t.test('airlock run -: the program from stdin, with --runtime; the limit flags', async (t) => {
  const fromStdin = await airlock(
    ['run', '-', '--runtime', 'python', '--json', '--cpus', '0.5', '--pids', '32', '--output', '1000', '--', 'an-arg'],
    { input: 'import sys\nprint("from stdin", sys.argv[1:])\n' },
  )
  t.equal(fromStdin.code, 0, fromStdin.stderr)
  const job = JSON.parse(fromStdin.stdout) as { id: string; stdout: string }
  t.equal(job.stdout, "from stdin ['an-arg']\n")
  t.equal((await airlock(['run', '-'], { input: 'print(1)' })).code, 64, 'no runtime to tell from a name')
  t.equal(
    (await airlock(['run', '-', '-r', 'python', '--stdin', '-'], { input: 'print(1)' })).code,
    64,
    'stdin cannot be both',
  )
  for (const bad of [
    ['--cpus', 'x'],
    ['--cpus', '0'],
    ['--pids', '1.5'],
    ['--output', '-1'],
    ['--memory', '0'],
  ]) {
    t.equal((await airlock(['run', '-', '-r', 'python', ...bad], { input: 'print(1)' })).code, 64, bad.join(' '))
  }
  const tooBig = await airlock(['run', '-', '-r', 'python', '--pids', '999999999'], { input: 'print(1)' })
  t.equal(tooBig.code, 65, "a limit past the server's maximum is the server's refusal")
  t.match(
    (await airlock(['run', '--help'])).stdout,
    /python, node, bash, c, cpp, java, go, rust,\s+ml-python/,
    'every runtime in the help',
  )
})

t.test(
  'distinct exit codes for usage, auth, not found and an unreachable server; settings from a config file',
  async (t) => {
    t.equal((await airlock(['run', await file('prog.rb', 'puts 1')])).code, 64, 'unknown extension without --runtime')
    t.equal((await airlock(['frobnicate'])).code, 64, 'unknown command')
    const help = await airlock(['--help'])
    t.equal(help.code, 0)
    t.match(help.stdout, /run \[options\] <file> \[args\.\.\.\][\s\S]*jobs[\s\S]*runtimes[\s\S]*verify[\s\S]*serve/)
    t.equal((await airlock(['jobs', 'list'], { env: { AIRLOCK_API_KEY: 'wrong-key-000' } })).code, 77)
    t.equal((await airlock(['jobs', 'get', 'job_00000000000000000000000000000000'])).code, 66)
    const down = await airlock(['jobs', 'list', '--url', 'http://127.0.0.1:9'])
    t.equal(down.code, 69)
    t.match(down.stderr, /cannot reach Airlock at http:\/\/127\.0\.0\.1:9/)
    const config = await file('config.json', JSON.stringify({ url: h.baseUrl, apiKey: TENANTS.bob }))
    const viaFile = await airlock(['jobs', 'list', '--json', '--config', config], {
      env: { AIRLOCK_URL: '', AIRLOCK_API_KEY: '' },
    })
    t.equal(viaFile.code, 0, 'url and key from the config file')
    t.same(JSON.parse(viaFile.stdout).items, [], "bob sees none of alice's jobs")
    t.equal(
      (await airlock(['jobs', 'list', '--config', join(dir, 'missing.json')])).code,
      64,
      'a named config file must exist',
    )
  },
)

t.test('airlock tenants: create, issue a key, set quotas, audit, revoke', async (t) => {
  const adminKey = 'admin-key-for-cli-tests-01'
  const server = await build(t, { listen: true, worker: false, env: { AIRLOCK_ADMIN_KEY: adminKey } })
  const env = { AIRLOCK_URL: server.baseUrl, AIRLOCK_ADMIN_KEY: adminKey, AIRLOCK_API_KEY: '' }
  t.equal((await airlock(['tenants', 'create', 'ivy', '--submits-per-second', '5'], { env })).code, 0)
  t.equal((await airlock(['tenants', 'create', 'ivy'], { env })).code, 70, 'exists already')
  const issued = await airlock(['tenants', 'keys', 'issue', 'ivy', '--role', 'admin', '--json'], { env })
  const { key, info } = JSON.parse(issued.stdout) as { key: string; info: { keyId: string } }
  const asIvy = { ...env, AIRLOCK_API_KEY: key }
  t.equal((await airlock(['jobs', 'list', '--json'], { env: asIvy })).code, 0, 'the new key works')
  t.equal((await airlock(['tenants', 'quotas', 'ivy', '--max-memory-mb', '128'], { env })).code, 0)
  const got = JSON.parse((await airlock(['tenants', 'get', 'ivy', '--json'], { env })).stdout) as {
    quotas: object
    keys: { keyId: string }[]
  }
  t.same(got.quotas, { maxMemoryMb: 128 })
  t.same(
    got.keys.map((k) => k.keyId),
    [info.keyId],
  )
  t.match((await airlock(['tenants', 'list'], { env })).stdout, /^ivy$/m)
  t.match((await airlock(['tenants', 'audit', 'ivy'], { env })).stdout, /admin +key\.issued/)
  t.equal((await airlock(['tenants', 'keys', 'revoke', 'ivy', info.keyId], { env })).code, 0)
  t.equal((await airlock(['jobs', 'list'], { env: asIvy })).code, 77, 'the revoked key is refused')
  t.equal(
    (await airlock(['tenants', 'list'], { env: { ...env, AIRLOCK_ADMIN_KEY: key } })).code,
    77,
    'a tenant key is not an admin key',
  )
  t.equal(
    (await airlock(['tenants', 'list'], { env: { ...env, AIRLOCK_ADMIN_KEY: '' } })).code,
    64,
    'no admin key: usage',
  )
})
