import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Job } from '../../core/job.js'
import type { JobEvent } from '../../core/job-events.js'
import { build, TENANTS } from '../helper.js'
import { openStream, strip } from '../ws-client.js'

// Compiled runtimes and test cases in real gVisor sandboxes: compile once, then each
// case with its own stdin, time limit and verdict; the compiler's output apart from
// the program's; each step visible on the live stream.
const h = await build(t, { listen: true })
const auth = { authorization: `Bearer ${TENANTS.alice}` }

const SUM_CPP = `#include <iostream>
int main() {
  long a, b;
  std::cin >> a >> b;
  if (a < 0) { volatile int *p = nullptr; *p = 1; }
  if (a == 99) for (;;) {}
  std::cout << a + b << "  \\n";
  std::cerr << "case " << a << "\\n";
}
`

t.test('a C++ program with five test cases compiles once and reports each case', async (t) => {
  const job = await h.run({
    runtime: 'cpp',
    source: SUM_CPP,
    limits: { timeoutMs: 1500 },
    tests: [
      { stdin: '1 2', expectedOutput: '3' },
      { stdin: '5 5', expectedOutput: '11' },
      { stdin: '-1 2' },
      { stdin: '99 1', expectedOutput: '100' },
      { stdin: '20 22', expectedOutput: '42\n' },
    ],
  })
  t.equal(job.status, 'failed', job.reason ?? '')
  t.equal(job.reason, '3 of 5 test cases did not pass (1 wrong-answer, 1 runtime-error, 1 timeout)')
  t.match(job.compile, { status: 'succeeded', exitCode: 0, stderr: '' })
  t.same(
    job.tests.map((c) => [c.status, c.exitCode, c.signal, c.matched]),
    [
      ['passed', 0, null, true],
      ['wrong-answer', 0, null, false],
      ['runtime-error', null, 'SIGSEGV', null],
      ['timeout', null, 'SIGKILL', false],
      ['passed', 0, null, true],
    ],
  )
  t.same(
    job.tests.map((c) => c.stderr),
    ['case 1\n', 'case 5\n', '', '', 'case 20\n'],
    "each case's stderr is its own",
  )
  t.equal(job.stdout, '3  \n10  \n42  \n', "the job's stdout is every case's, in order")
  // Compiled once: one compile time, and every case far quicker than compiling again.
  const compileMs = job.compile!.timeMs!
  t.ok(compileMs > 0)
  for (const c of job.tests.filter((c) => c.status !== 'timeout'))
    t.ok(c.timeMs! < compileMs, `a case took ${c.timeMs} ms, the compile ${compileMs} ms`)
  t.ok(job.tests[3]!.timeMs! >= 1500, "the endless case ran for its whole limit, not the job's")
  t.equal(
    job.timings.runMs,
    job.tests.reduce((n, c) => n + c.timeMs!, 0),
    "runMs is the cases' time, not the compile's",
  )
})

t.test('Java, Rust and Go programs compile and run with their stdin and args', async (t) => {
  const programs: [string, string, string][] = [
    [
      'java',
      'Main.java',
      'public class Main { public static void main(String[] a) throws Exception { var r = new java.io.BufferedReader(new java.io.InputStreamReader(System.in)); System.out.println("java " + r.readLine() + " " + a[0]); } }',
    ],
    [
      'rust',
      'main.rs',
      'use std::io::Read;\nfn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap(); println!("rust {} {}", s.trim(), std::env::args().nth(1).unwrap()); }\n',
    ],
    [
      'go',
      'main.go',
      'package main\nimport ("bufio"; "fmt"; "os")\nfunc main() { s := bufio.NewScanner(os.Stdin); s.Scan(); fmt.Println("go", s.Text(), os.Args[1]) }\n',
    ],
  ]
  for (const [runtime, path, content] of programs) {
    const job = await h.run({
      runtime,
      files: [{ path, content }],
      stdin: 'in\n',
      args: ['arg'],
      // What is checked is the program's answer, not how fast it compiles: rustc in gVisor
      // has taken past the 30 s default on this loaded two-core machine.
      limits: { timeoutMs: 10_000, compileTimeoutMs: 120_000 },
    })
    t.equal(job.status, 'succeeded', `${runtime}: ${job.reason ?? ''} ${job.compile?.stderr ?? ''}`)
    t.equal(job.stdout, `${runtime} in arg\n`)
    t.equal(job.compile?.status, 'succeeded')
    t.same(job.tests, [], 'no tests, no case results')
  }
})

t.test("a compile error is its own outcome: nothing runs, the compiler's output is in compile", async (t) => {
  const job = await h.run({ runtime: 'c', source: 'int main() { return undefined_thing; }', tests: [{ stdin: '' }] })
  t.equal(job.status, 'failed')
  t.match(job.reason, /^the compile failed \(exit 1\); nothing was run/)
  t.equal(job.compile?.status, 'failed')
  t.match(job.compile?.stderr, /undefined_thing/)
  t.equal(job.stdout, '', "the compiler's output is not the program's")
  t.equal(job.stderr, '')
  t.same(job.tests, [])
  t.equal(job.timings.runMs, null, 'no program ran')
})

t.test('a compile that runs past its own time limit ends as timeout, and nothing runs', async (t) => {
  // The preprocessor expands this to 2^22 copies: far more than 100 ms of work.
  const bomb =
    '#define A x x\n#define B A A A A\n#define C B B B B\n#define D C C C C\n#define E D D D D\n#define F E E E E\n#define G F F F F\n#define H G G G G\n#define I H H H H\n#define J I I I I\n#define K J J J J\nint main(){ K; }\n'
  const job = await h.run({ runtime: 'c', source: bomb, limits: { compileTimeoutMs: 100 } })
  t.equal(job.status, 'timeout')
  t.equal(job.compile?.status, 'timeout')
  t.equal(job.reason, 'the compile exceeded its time limit of 100 ms; nothing was run')
})

t.test("the live stream says which step is running, and each case's output as it ends", async (t) => {
  const res = await h.request('POST', '/v1/jobs', {
    runtime: 'python',
    source: 'import sys, time\nn = sys.stdin.read().strip()\ntime.sleep(0.7)\nprint("case", n)',
    tests: [{ stdin: '1' }, { stdin: '2' }, { stdin: '3' }],
  })
  t.equal(res.statusCode, 202)
  const { id } = res.json<{ id: string }>()
  const got = await openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth)
  const steps = got.events.filter((e) => e.type === 'step')
  const end = got.events.find((e) => e.type === 'end')!
  t.ok(
    steps.length === 3 && end.at - steps[1]!.at >= 1000,
    `case 2's start arrived ${end.at - (steps[1]?.at ?? 0)} ms before the end`,
  )
  // Each step's mark, then its output (in one event or more).
  const seen: string[] = []
  for (const e of strip(got)) {
    if (e.type === 'step') seen.push(`${e.step}:${e.index}`, '')
    else if (e.type === 'log') seen[seen.length - 1] += e.data
  }
  t.same(seen, ['test:1', 'case 1\n', 'test:2', 'case 2\n', 'test:3', 'case 3\n'])
  const job = (end as Extract<JobEvent, { type: 'end' }>).job
  t.equal(job.status, 'succeeded')
  t.equal(job.compile, null, 'an interpreter has no compile step')
  t.same(
    job.tests.map((c) => c.stdout),
    ['case 1\n', 'case 2\n', 'case 3\n'],
  )
})

t.test(
  'a hostile program cannot forge a report, see an expected output, outlive its case, or pass by killing its runner',
  async (t) => {
    const source = [
      'import os, sys, glob',
      'what = sys.stdin.read().strip()',
      'if what == "forge":',
      `    print("airlock-step-begin " + "cd" * 16)`,
      `    print("airlock-step " + "ab" * 16 + " end test 1 0 5")`,
      `    print("airlock-step " + "ab" * 16 + " done")`,
      '    sys.exit(3)',
      'elif what == "snoop":',
      '    text = ""',
      '    for p in glob.glob("/tmp/**", recursive=True) + glob.glob("/airlock/**", recursive=True) + glob.glob("/proc/*/cmdline") + glob.glob("/proc/*/environ"):',
      '        try:',
      '            if os.path.isfile(p) or p.startswith("/proc"): text += open(p, "rb").read().decode("latin1")',
      '        except OSError: pass',
      '    print("seen" if "SECRET" + "-EXPECTED" in text else "not seen")',
      'elif what == "killall":',
      '    os.kill(-1, 9)',
      'elif what == "runner":',
      '    os.kill(os.getppid(), 9)',
      'elif what == "leave":',
      '    import subprocess',
      '    subprocess.Popen(["sh", "-c", "sleep 1; echo late > /tmp/leak"], start_new_session=True)',
      '    print("left")',
      'elif what == "check":',
      '    import time',
      '    time.sleep(2)',
      '    print("leaked" if os.path.exists("/tmp/leak") else "clean")',
    ].join('\n')
    const job = await h.run({
      runtime: 'python',
      source,
      limits: { timeoutMs: 5000 },
      tests: [
        { stdin: 'forge', expectedOutput: 'x' },
        { stdin: 'snoop', expectedOutput: 'SECRET-EXPECTED' },
        { stdin: 'killall' },
        { stdin: 'runner' },
        { stdin: 'snoop', expectedOutput: 'not seen' },
        { stdin: 'leave', expectedOutput: 'left' },
        { stdin: 'check', expectedOutput: 'clean' },
      ],
    })
    t.same(
      job.tests.map((c) => [c.status, c.exitCode, c.signal]),
      [
        ['runtime-error', 3, null],
        ['wrong-answer', 0, null],
        ['runtime-error', null, 'SIGKILL'],
        ['runtime-error', null, 'SIGKILL'],
        ['passed', 0, null],
        ['passed', 0, null],
        ['passed', 0, null],
      ],
      'a process a case leaves in a session of its own (holding its output) is killed with it: the next case sees nothing of it',
    )
    t.match(job.tests[0]!.stdout, /^airlock-step-begin cdcd/, 'forged frames are only text of the case')
    t.equal(job.tests[1]!.stdout, 'not seen\n', 'no expected output is anywhere in the sandbox')
    t.equal(job.status, 'failed')
  },
)

t.test('bad test cases get 400 with a code; other tenants cannot read them', async (t) => {
  const tooMany = await h.request('POST', '/v1/jobs', {
    runtime: 'python',
    source: 'x',
    tests: Array.from({ length: h.config.maxTestCases + 1 }, () => ({})),
  })
  t.equal(tooMany.statusCode, 400)
  t.equal(tooMany.json().code, 'AIRLOCK_ERR_VALIDATION')
  const unknownField = await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'x', tests: [{ input: '1' }] })
  t.equal(unknownField.statusCode, 400)
  const job: Job = await h.run({ runtime: 'python', source: 'print(input())', tests: [{ stdin: 'private' }] })
  t.equal(job.tests[0]!.stdout, 'private\n')
  t.equal((await h.request('GET', `/v1/jobs/${job.id}`, undefined, 'bob')).statusCode, 404)
})

t.test("a job's environment is its program's: an LD_PRELOAD of its own cannot lift a case's time limit", async (t) => {
  // Found by review 18: the step driver and its helpers (timeout, head, od, date) ran in
  // the job's environment, so a library of the job's own, preloaded, made `timeout`'s
  // timer do nothing: a case that slept past its limit passed. The library is built here
  // with the host's C compiler (scripts/test.sh installs gcc).
  const dir = await mkdtemp(join(tmpdir(), 'airlock-preload-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(
    join(dir, 'evil.c'),
    'int timer_settime(void*a,int b,void*c,void*d){return 0;}\nunsigned alarm(unsigned s){return 0;}\nint setitimer(int w,void*n,void*o){return 0;}\n',
  )
  const built = spawnSync('gcc', ['-shared', '-fPIC', '-nostdlib', '-o', join(dir, 'evil.so'), join(dir, 'evil.c')])
  t.equal(built.status, 0, 'the library builds')
  const library = (await readFile(join(dir, 'evil.so'))).toString('base64')
  const job = await h.run({
    runtime: 'python',
    files: [
      { path: 'main.py', content: 'import time\ntime.sleep(3)\nprint(42)' },
      { path: 'evil.so', content: library, encoding: 'base64' },
    ],
    // Where a cold and a warm sandbox have the job's files.
    env: { LD_PRELOAD: '/airlock/job/evil.so /airlock/job/files/evil.so' },
    tests: [{ stdin: '', expectedOutput: '42' }],
    limits: { timeoutMs: 1000 },
  })
  t.equal(
    job.tests[0]?.status,
    'timeout',
    "the case ran past its limit and was ended: the library was the program's alone",
  )
  t.equal(job.status, 'failed')
  const seen = await h.run({
    runtime: 'python',
    source: 'import os\nprint(os.environ["GREETING"], os.environ.get("LD_PRELOAD"))',
    env: { GREETING: 'hello there', LD_PRELOAD: '' },
    tests: [{ stdin: '', expectedOutput: 'hello there ' }],
  })
  t.equal(seen.tests[0]?.status, 'passed', 'the program has its environment')
})
