import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import type { JobOutcome } from '../../core/job.js'
import { resolveJobSpec, type JobSpec } from '../../core/job-spec.js'
import { loadConfig } from '../../core/config.js'
import { findRuntime, parseCatalog, type RuntimeDefinition } from '../../core/runtimes.js'
import { outputMatches, runOutputBytes, TEST_OUTPUT_PREVIEW_BYTES } from '../../core/test-cases.js'
import {
  DRIVER_HELPER_PROCESSES,
  driverInput,
  driverSpec,
  driverStreamBytes,
  STEP_BEGIN,
  STEP_FRAME,
} from '../../worker/steps/step-driver.js'
import { parseStepStream, StepStreamParser } from '../../worker/steps/step-report.js'
import { STEP_REASONS, stepsOutcome } from '../../worker/steps/step-outcome.js'

// The step driver and what the worker makes of its reports, without a sandbox: the
// script runs under the host's dash here (the e2e tests run it in gVisor).
const config = loadConfig({})
const execFileP = promisify(execFile)
const cpp = findRuntime('cpp')!
const python = findRuntime('python')!
const NONCE = 'ab'.repeat(16)

function spec(runtime: RuntimeDefinition, extra: Record<string, unknown> = {}): JobSpec {
  return resolveJobSpec(
    { runtime: runtime.name, source: 'x', ...extra } as Parameters<typeof resolveJobSpec>[0],
    config,
  )
}

/** A driver's stream as it writes it: the begin line, then each step's frames around its text. */
function stream(
  steps: { kind: string; index: number; text: string; status?: number; ms?: number }[],
  done = true,
  nonce = NONCE,
): string {
  let s = `${STEP_BEGIN} ${nonce}\n`
  for (const st of steps) {
    s += `${STEP_FRAME} ${nonce} start ${st.kind} ${st.index}\n${st.text}`
    s += `${STEP_FRAME} ${nonce} end ${st.kind} ${st.index}${st.status === undefined ? '' : ` ${st.status} ${(st.ms ?? 1) * 1e6}`}\n`
  }
  return done ? `${s}${STEP_FRAME} ${nonce} done\n` : s
}

function ran(stdout: string, stderr: string, status: JobOutcome['status'] = 'succeeded'): JobOutcome {
  return {
    status,
    exitCode: 0,
    signal: null,
    reason: status === 'timeout' ? 'exceeded the time limit' : null,
    stdout,
    stderr,
    truncated: false,
    startupMs: 100,
    runMs: 900,
  }
}

t.test('a case passes when its stdout matches, line ends and trailing blank lines aside', async (t) => {
  t.ok(outputMatches('3  \n', '3'))
  t.ok(outputMatches('a\r\nb\t\n\n\n', 'a\nb'))
  t.notOk(outputMatches('3', '4'))
  t.notOk(outputMatches(' 3', '3'), 'leading whitespace counts')
  t.notOk(outputMatches('a\n\nb', 'a\nb'), 'blank lines inside count')
  t.ok(outputMatches('a \f\v\r\n \r\n\n', 'a'), 'every kind of line-end whitespace, and lines of only it at the end')
  t.notOk(outputMatches('a\rb', 'ab'), 'a lone CR inside a line counts')
})

t.test('the comparison is the rule as it was first written, on every short text', async (t) => {
  // The rule's first form, a clear statement of it for short texts (quadratic on long ones).
  const normalized = (text: string) =>
    text
      .replace(/\r\n/g, '\n')
      .split('\n')
      .map((line) => line.replace(/[ \t\r\f\v]+$/, ''))
      .join('\n')
      .replace(/\n+$/, '')
  const alphabet = ['a', 'b', ' ', '\t', '\r', '\n', '\f', '\v']
  let seed = 7
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  const text = () => Array.from({ length: random(10) }, () => alphabet[random(alphabet.length)]).join('')
  let disagreed = 0
  let matched = 0
  for (let i = 0; i < 20_000; i++) {
    const actual = text()
    // Half the pairs from the same text with its whitespace changed, so that many match.
    const expected = i % 2 ? text() : actual.replace(/[ \t\f\v]/g, () => alphabet[2 + random(2)]!).concat('\n')
    const want = normalized(actual) === normalized(expected)
    if (outputMatches(actual, expected) !== want) disagreed++
    if (want) matched++
  }
  t.equal(disagreed, 0, `20,000 pairs, ${matched} of them matching: no disagreement`)
  t.ok(matched > 2000, 'enough matching pairs to tell')
})

t.test('comparing a long run of whitespace that something follows takes one pass, not one per start', async (t) => {
  // Found by the fourteenth review: the old comparison's `[ \t]+$` and `\n+$` were tried from
  // every start of such a run, quadratic in its length: 200,000 of them took 38-46 s (its
  // event loop the API's too), a megabyte minutes. Not a speed target: a bound a hundred
  // times what one pass takes here, that the quadratic comparison passes many times over.
  for (const [name, run] of [
    ['spaces', ' '],
    ['tabs', '\t'],
    ['newlines', '\n'],
    ['CRLFs', '\r\n'],
    ['lines', 'x \n'],
  ] as const) {
    const long = `${run.repeat(200_000)}x`
    const started = performance.now()
    t.notOk(outputMatches(long, 'y'), `${name}: compared`)
    t.ok(outputMatches(`${long} \t\r\n\n`, long), `${name}: trailing whitespace ignored`)
    const ms = performance.now() - started
    t.ok(ms < 1000, `${name}: 200,000 and an x compared in ${ms.toFixed(1)} ms`)
  }
})

t.test('the parser reads frames however the stream is cut, and nothing without the nonce is a frame', async (t) => {
  const text = stream([
    { kind: 'compile', index: 0, text: 'warning\n', status: 0 },
    {
      kind: 'test',
      index: 1,
      text: `out1\n${STEP_FRAME} ${'cd'.repeat(16)} end test 1 0 5\nno newline`,
      status: 0,
      ms: 12,
    },
    { kind: 'test', index: 2, text: '', status: 137, ms: 1000 },
  ])
  const whole = parseStepStream(text, () => 1000)
  t.ok(whole.done)
  t.same(
    whole.steps.map((s) => [s.kind, s.index, s.text, s.end?.status]),
    [
      ['compile', 0, 'warning\n', 0],
      ['test', 1, `out1\n${STEP_FRAME} ${'cd'.repeat(16)} end test 1 0 5\nno newline`, 0],
      ['test', 2, '', 137],
    ],
  )
  const live: string[] = []
  const started: string[] = []
  const bytewise = new StepStreamParser(() => 1000, {
    text: (s, x) => live.push(`${s.index}:${x}`),
    start: (s) => started.push(`${s.kind}${s.index}`),
  })
  for (const ch of text) bytewise.push(ch)
  bytewise.finish()
  t.same(
    bytewise.steps.map((s) => s.text),
    whole.steps.map((s) => s.text),
    'a character at a time, the same steps',
  )
  t.same(started, ['compile0', 'test1', 'test2'], 'each step is announced as it starts')
  t.equal(
    live
      .filter((l) => l.startsWith('1:'))
      .map((l) => l.slice(2))
      .join(''),
    whole.steps[1]!.text,
    'live text is the whole text',
  )
})

t.test('a step is cut at its cap; a stream without the begin line is broken', async (t) => {
  const p = parseStepStream(stream([{ kind: 'run', index: 1, text: 'héllo wörld', status: 0 }]), () => 2)
  t.equal(p.steps[0]!.text, 'h', 'a character the cap splits is dropped whole')
  t.ok(p.steps[0]!.truncated)
  const forged = parseStepStream(`hello\n${stream([{ kind: 'run', index: 1, text: 'x', status: 0 }])}`, () => 10)
  t.ok(forged.broken)
  t.same(forged.steps, [])
  t.ok(parseStepStream(`${STEP_BEGIN} nothex\n`, () => 1).broken)
})

t.test(
  'reports -> outcome: a compile error, tests that pass and fail, an incomplete report, a sandbox timeout',
  async (t) => {
    const withTests = spec(cpp, {
      tests: [{ stdin: '1', expectedOutput: '2' }, { stdin: '2', expectedOutput: '3' }, { stdin: '3' }, { stdin: '4' }],
      limits: { timeoutMs: 1000 },
    })
    const compileErr = stepsOutcome(
      withTests,
      cpp,
      ran(
        stream([{ kind: 'compile', index: 0, text: '', status: 1, ms: 300 }]),
        stream([{ kind: 'compile', index: 0, text: 'main.cpp:1: error' }]),
        'failed',
      ),
    )
    t.equal(compileErr.status, 'failed')
    t.equal(compileErr.reason, STEP_REASONS.compileFailed('exit 1'))
    t.match(compileErr.compile, { status: 'failed', exitCode: 1, stderr: 'main.cpp:1: error', timeMs: 300 })
    t.same(compileErr.tests, [])
    t.equal(compileErr.runMs, null, 'nothing ran')

    const steps = [
      { kind: 'compile', index: 0, text: '', status: 0, ms: 500 },
      { kind: 'test', index: 1, text: '2\n', status: 0, ms: 10 },
      { kind: 'test', index: 2, text: '4\n', status: 0, ms: 11 },
      { kind: 'test', index: 3, text: '', status: 139, ms: 12 },
      { kind: 'test', index: 4, text: '', status: 137, ms: 1001 },
    ]
    const mixed = stepsOutcome(
      withTests,
      cpp,
      ran(
        stream(steps),
        stream(steps.map((s) => ({ ...s, text: s.kind === 'test' ? `e${s.index}` : '', status: undefined }))),
      ),
    )
    t.equal(mixed.status, 'failed')
    t.same(
      mixed.tests!.map((c) => [c.status, c.exitCode, c.signal, c.matched, c.timeMs]),
      [
        ['passed', 0, null, true, 10],
        ['wrong-answer', 0, null, false, 11],
        ['runtime-error', null, 'SIGSEGV', null, 12],
        ['timeout', null, 'SIGKILL', null, 1001],
      ],
    )
    t.equal(mixed.reason, STEP_REASONS.testsFailed(3, 4, '1 wrong-answer, 1 runtime-error, 1 timeout'))
    t.equal(mixed.stdout, '2\n4\n', "the job's stdout is every case's, in order; not the compiler's")
    t.equal(mixed.stderr, 'e1e2e3e4')
    t.equal(mixed.runMs, 10 + 11 + 12 + 1001)
    t.equal(mixed.compile!.timeMs, 500)
    t.equal(mixed.tests![0]!.stdoutBytes, 2)

    const killedEarly = stepsOutcome(withTests, cpp, ran(stream(steps.slice(0, 2), false), '', 'failed'))
    t.equal(killedEarly.status, 'failed')
    t.match(killedEarly.reason, /before every step had reported/)
    t.equal(killedEarly.tests!.length, 1, 'the cases that reported are kept')

    const timedOut = stepsOutcome(withTests, cpp, ran(stream(steps.slice(0, 2), false), '', 'timeout'))
    t.equal(timedOut.status, 'timeout', "the sandbox's own end stands")
    t.equal(timedOut.reason, STEP_REASONS.allSteps(1000))

    const single = spec(cpp, { stdin: 'x' })
    const run = stepsOutcome(
      single,
      cpp,
      ran(
        stream([
          { kind: 'compile', index: 0, text: '', status: 0 },
          { kind: 'run', index: 1, text: 'hi\n', status: 3 },
        ]),
        '',
      ),
    )
    t.match(run, { status: 'failed', exitCode: 3, stdout: 'hi\n', reason: 'exited with code 3' })
    t.equal(run.tests, undefined, 'a job without tests lists none')
  },
)

t.test('frames out of order, or a step twice, break the report: the job fails and lists no case', async (t) => {
  const withTests = spec(python, { tests: [{ stdin: '1', expectedOutput: 'ok' }, { stdin: '2' }] })
  const twice = `${STEP_BEGIN} ${NONCE}\n${STEP_FRAME} ${NONCE} start test 1\nok\n${STEP_FRAME} ${NONCE} end test 1 0 5\n${STEP_FRAME} ${NONCE} start test 1\n`
  t.ok(parseStepStream(twice, () => 100).broken, 'a step started twice')
  t.ok(
    parseStepStream(`${STEP_BEGIN} ${NONCE}\n${STEP_FRAME} ${NONCE} start test 2\n`, () => 100).broken,
    'a case before case 1',
  )
  t.ok(
    parseStepStream(
      `${STEP_BEGIN} ${NONCE}\n${STEP_FRAME} ${NONCE} start test 1\n${STEP_FRAME} ${NONCE} end test 1 0 5\n${STEP_FRAME} ${NONCE} start compile 0\n`,
      () => 100,
    ).broken,
    'a compile after a case',
  )
  // A frame's start with no line end where the driver's would have one: held, it was searched
  // again with every piece after it (quadratic in the stream, found by a code review).
  const open = new StepStreamParser(() => 1_000_000)
  open.push(`${STEP_BEGIN} ${NONCE}\n${STEP_FRAME} ${NONCE} start test 1\nok\n${STEP_FRAME} ${NONCE} end te`)
  t.notOk(open.broken, 'a frame cut between pieces is waited for')
  for (let i = 0; i < 100 && !open.broken; i++) open.push('s'.repeat(1024))
  t.ok(open.broken, 'a frame line longer than any the driver writes breaks the report')
  const o = stepsOutcome(
    withTests,
    python,
    ran(
      `${twice}${STEP_FRAME} ${NONCE} end test 1 137 5\n${STEP_FRAME} ${NONCE} done\n`,
      stream([{ kind: 'test', index: 1, text: '' }]),
    ),
  )
  t.equal(o.status, 'failed')
  t.equal(o.reason, STEP_REASONS.broken)
  t.same(o.tests, [], 'no case result that could be forged')
})

t.test('a case keeps a preview of its output; the job keeps all of it', async (t) => {
  const s = spec(python, { tests: [{ stdin: '' }] })
  const big = 'x'.repeat(TEST_OUTPUT_PREVIEW_BYTES + 10)
  const o = stepsOutcome(
    s,
    python,
    ran(stream([{ kind: 'test', index: 1, text: big, status: 0 }]), stream([{ kind: 'test', index: 1, text: '' }])),
  )
  t.equal(o.tests![0]!.stdout.length, TEST_OUTPUT_PREVIEW_BYTES)
  t.equal(o.tests![0]!.stdoutBytes, big.length)
  t.equal(o.stdout, big)
})

t.test('the driver spec: the steps in its stdin, limits that hold every step', async (t) => {
  const s = spec(cpp, {
    tests: [{ stdin: 'a\nb', args: ['x y', ''] }, { stdin: '' }],
    limits: { timeoutMs: 2000, compileTimeoutMs: 5000, outputBytes: 1000, pids: 10 },
  })
  const d = driverSpec(s, cpp)
  t.equal(d.program![0], '/bin/sh')
  t.same(d.args, [])
  t.ok(d.limits.timeoutMs >= 5000 + 2 * 2000, 'the compile and every case fit in the time limit')
  t.equal(d.limits.pids, 10 + DRIVER_HELPER_PROCESSES)
  t.equal(d.limits.outputBytes, driverStreamBytes(s, cpp))
  t.ok(d.limits.outputBytes >= 1000 + 2 * runOutputBytes(1000, 2), 'every step fits at its cap')
  t.equal(runOutputBytes(1000, 2), 500, "the cases share the job's cap")
  t.notMatch(JSON.stringify(d), /expectedOutput/, 'no expected output enters the sandbox')
  const input = driverInput(s, cpp)
  t.match(input, /^d 0 compile\n/)
  t.match(input, /f 3 s\/1\/in\na\nb/, "a case's stdin, byte for byte")
  t.match(input, /f 3 s\/1\/args\/000000\nx yf 0 s\/1\/args\/000001\n/, 'its args, one file each')
  t.match(input, /e 0 -\n$/)
  t.equal(
    driverSpec(spec(python, { tests: [{ stdin: '' }] }), python).limits.compileTimeoutMs,
    undefined,
    'an interpreter has no compile',
  )
})

/**
 * Runs the driver under the host's dash with a runtime whose steps are shell lines, in
 * a pid namespace of its own (as in a sandbox): after each step it kills every process
 * its /proc shows that was born during the step, which on the host would be anyone's.
 */
async function drive(
  runtime: RuntimeDefinition,
  s: JobSpec,
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const d = driverSpec(s, runtime)
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', ...d.program!], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  child.stdin.end(d.stdin)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { stdout, stderr, code }
}

const shellRuntime = (compile: string, run: string) =>
  parseCatalog(
    JSON.stringify({
      runtimes: [
        {
          name: 'sh',
          description: 'd',
          version: '1',
          image: 'x',
          localImage: 'x',
          defaultEntrypoint: 'main.sh',
          compile: ['sh', '-c', compile, '{entrypoint}'],
          command: ['sh', '-c', run, 'prog', '{args}'],
        },
      ],
    }),
  )[0]!

t.test('the driver script runs the compile once, then each case with its stdin, args and time limit', async (t) => {
  const rt = shellRuntime(
    'echo compiling; echo warn >&2',
    'read l; echo "got $l args=$#:$1"; [ "$l" = slow ] && sleep 5; [ "$l" = fail ] && exit 4; exit 0',
  )
  const s: JobSpec = {
    ...spec(python, {}),
    runtime: 'sh',
    limits: { ...spec(python).limits, timeoutMs: 500, compileTimeoutMs: 5000, outputBytes: 4000 },
    tests: [
      { stdin: 'one\n', args: ['a b'] },
      { stdin: 'fail\n', args: [] },
      { stdin: 'slow\n', args: ['x', 'y'], expectedOutput: 'never' },
    ],
  }
  const r = await drive(rt, s)
  t.equal(r.code, 0)
  const o = stepsOutcome(s, rt, ran(r.stdout, r.stderr))
  t.same(o.compile && [o.compile.status, o.compile.stdout, o.compile.stderr], ['succeeded', 'compiling\n', 'warn\n'])
  t.same(
    o.tests!.map((c) => [c.status, c.stdout, c.exitCode]),
    [
      ['passed', 'got one args=1:a b\n', 0],
      ['runtime-error', 'got fail args=0:\n', 4],
      ['timeout', 'got slow args=2:x\n', null],
    ],
  )
  t.ok(
    o.tests![2]!.timeMs! >= 500 && o.tests![2]!.timeMs! < 4000,
    `the slow case was stopped at its limit (${o.tests![2]!.timeMs} ms)`,
  )

  // A case that leaves a process behind in a session of its own, holding its output
  // open: it is killed when the case ends, so it writes nothing the next case could see
  // (and the case's readers are not held open by it).
  const leaving = shellRuntime(
    'true',
    'read l; if [ "$l" = leave ]; then setsid sh -c "sleep 2; echo late > /tmp/airlock-leak-$PPID" & echo left; else sleep 3; ls /tmp/airlock-leak-* 2>/dev/null; echo checked; fi',
  )
  const ls: JobSpec = {
    ...s,
    limits: { ...s.limits, timeoutMs: 10_000 },
    tests: [
      { stdin: 'leave\n', args: [] },
      { stdin: 'check\n', args: [] },
    ],
  }
  const lr = await drive(leaving, ls)
  const lo = stepsOutcome(ls, leaving, ran(lr.stdout, lr.stderr))
  t.teardown(() => execFileP('sh', ['-c', 'rm -f /tmp/airlock-leak-*']))
  t.same(
    lo.tests!.map((c) => [c.status, c.stdout]),
    [
      ['passed', 'left\n'],
      ['passed', 'checked\n'],
    ],
    'what case 1 left was killed before it could write anything',
  )

  const failing = shellRuntime('echo nope >&2; exit 2', 'echo never')
  const f = await drive(failing, { ...s, runtime: 'sh' })
  const fo = stepsOutcome(s, failing, ran(f.stdout, f.stderr, 'failed'))
  t.match(fo, { status: 'failed', compile: { status: 'failed', exitCode: 2, stderr: 'nope\n' }, tests: [] })
  t.notMatch(f.stdout, /never/, 'nothing runs after a failed compile')
})
