import type { JobOutcome } from '../../core/job.js'
import type { JobSpec } from '../../core/job-spec.js'
import type { RuntimeDefinition } from '../../core/runtimes.js'
import { outputMatches, TEST_OUTPUT_PREVIEW_BYTES, type CompileResult, type TestResult } from '../../core/test-cases.js'
import { classifyEnd } from '../executors/outcome.js'
import { runSteps, stepOutputBytes } from './step-driver.js'
import { utf8Boundary } from '../executors/output-capture.js'
import { parseStepStream, type StepText } from './step-report.js'

/** A step's exit status when `timeout -s KILL` ended it (128 + SIGKILL). */
const KILLED = 137

/** Reasons of a job of steps, in one place. */
export const STEP_REASONS = {
  compileFailed: (how: string) => `the compile failed (${how}); nothing was run; the compiler's output is in compile`,
  compileTimeout: (ms: number) => `the compile exceeded its time limit of ${ms} ms; nothing was run`,
  testsFailed: (failing: number, total: number, counts: string) =>
    `${failing} of ${total} test cases did not pass (${counts})`,
  incomplete: (exit: string) =>
    `the sandbox's step runner ended (${exit}) before every step had reported; the program may have stopped it`,
  broken:
    "the sandbox's step report was not the step runner's alone (the program wrote into it); no case's result can be trusted",
  allSteps: (ms: number) => `the job's steps together exceeded their time limit of ${ms} ms`,
} as const

interface StepEnd {
  status: JobOutcome['status']
  exitCode: number | null
  signal: string | null
  reason: string | null
  timeMs: number | null
}

/** A step's end frame -> how it ended. `timeoutMs`: the step's own limit. Pure. */
function stepEnd(end: StepText['end'], timeoutMs: number, memoryMb: number): StepEnd {
  if (!end) return { status: 'error', exitCode: null, signal: null, reason: null, timeMs: null }
  // Killed by timeout, not by something else: it ran for its whole limit.
  const timedOut = end.status === KILLED && end.elapsedNs >= timeoutMs * 1e6
  const c = classifyEnd({ exitStatus: end.status, timedOut, cancelled: false, oomKills: 0, timeoutMs, memoryMb })
  return { ...c, timeMs: Math.round(end.elapsedNs / 1e6) }
}

/**
 * What the executor brought back from the step driver -> the job's outcome: the
 * compile and each test case as the result lists them, the job's own stdout and
 * stderr (every run's, in order: the compiler's stay in compile), and its status.
 * When the sandbox itself ended badly (time, memory, cancel, an error of ours) that
 * status stands, with the steps that reported. Pure.
 */
export function stepsOutcome(spec: JobSpec, runtime: RuntimeDefinition, ran: JobOutcome): JobOutcome {
  const cap = (kind: StepText['kind']) => stepOutputBytes(spec, kind)
  const out = parseStepStream(ran.stdout, cap)
  const err = parseStepStream(ran.stderr, cap)
  const find = (p: typeof out, kind: StepText['kind'], index: number) =>
    p.steps.find((s) => s.kind === kind && s.index === index)
  const step = (kind: StepText['kind'], index: number) => {
    const o = find(out, kind, index)
    const e = find(err, kind, index)
    return {
      ran: o !== undefined,
      stdout: o?.text ?? '',
      stderr: e?.text ?? '',
      stdoutBytes: o?.bytes ?? 0,
      stderrBytes: e?.bytes ?? 0,
      truncated: !!(o?.truncated || e?.truncated),
      end: o?.end,
    }
  }

  let compile: CompileResult | null = null
  let compileEnd: StepEnd | undefined
  if (runtime.compile) {
    const s = step('compile', 0)
    const limit = spec.limits.compileTimeoutMs ?? spec.limits.timeoutMs
    compileEnd = stepEnd(s.end, limit, spec.limits.memoryMb)
    if (s.ran) {
      const status =
        compileEnd.status === 'succeeded'
          ? 'succeeded'
          : compileEnd.status === 'timeout' || (!s.end && ran.status === 'timeout')
            ? 'timeout'
            : 'failed'
      compile = {
        status,
        exitCode: compileEnd.exitCode,
        signal: compileEnd.signal,
        timeMs: compileEnd.timeMs,
        stdout: s.stdout,
        stderr: s.stderr,
        truncated: s.truncated,
      }
    }
  }

  const runs = runSteps(spec)
  const kind = spec.tests ? 'test' : 'run'
  const ranSteps = runs.map((_, i) => ({ i, ...step(kind, i + 1) })).filter((s) => s.ran)
  const ends = ranSteps.map((s) => stepEnd(s.end, spec.limits.timeoutMs, spec.limits.memoryMb))
  const tests: TestResult[] | undefined = spec.tests
    ? ranSteps.map((s, n) => {
        const e = ends[n]!
        const expected = spec.tests![s.i]!.expectedOutput
        const matched = expected === undefined ? null : outputMatches(s.stdout, expected)
        const status =
          e.status === 'timeout'
            ? 'timeout'
            : e.status === 'succeeded'
              ? matched === false
                ? 'wrong-answer'
                : 'passed'
              : 'runtime-error'
        return {
          status,
          exitCode: e.exitCode,
          signal: e.signal,
          timeMs: e.timeMs,
          stdout: preview(s.stdout),
          stderr: preview(s.stderr),
          truncated: s.truncated,
          stdoutBytes: s.stdoutBytes,
          stderrBytes: s.stderrBytes,
          matched,
          memoryKb: null,
        }
      })
    : undefined
  const timed = ends.filter((e) => e.timeMs !== null)
  const base: JobOutcome = {
    ...ran,
    stdout: ranSteps.map((s) => s.stdout).join(''),
    stderr: ranSteps.map((s) => s.stderr).join(''),
    truncated: ranSteps.some((s) => s.truncated),
    // The program's time: its runs', not the compile's or the driver's.
    runMs: timed.length > 0 ? timed.reduce((n, e) => n + e.timeMs!, 0) : null,
    compile,
    ...(tests ? { tests } : {}),
  }

  // The sandbox's own end (time, memory, cancel, our error) outranks what the steps said.
  if (ran.status !== 'succeeded' && ran.status !== 'failed') {
    return { ...base, reason: ran.status === 'timeout' ? STEP_REASONS.allSteps(spec.limits.timeoutMs) : ran.reason }
  }
  // Frames out of order or with another nonce: something besides the driver wrote them.
  if (out.broken || err.broken)
    return {
      ...base,
      status: 'failed',
      exitCode: null,
      signal: null,
      reason: STEP_REASONS.broken,
      ...(tests ? { tests: [] } : {}),
    }
  if (compile && compile.status !== 'succeeded') {
    const how = compile.signal ? `killed by ${compile.signal}` : `exit ${compile.exitCode}`
    const timeout = compile.status === 'timeout'
    return {
      ...base,
      status: timeout ? 'timeout' : 'failed',
      exitCode: null,
      signal: null,
      reason: timeout
        ? STEP_REASONS.compileTimeout(spec.limits.compileTimeoutMs ?? 0)
        : STEP_REASONS.compileFailed(how),
    }
  }
  if (!out.done || ranSteps.length < runs.length) {
    const exit = ran.signal ? `killed by ${ran.signal}` : `exit ${ran.exitCode}`
    return { ...base, status: 'failed', reason: STEP_REASONS.incomplete(exit) }
  }
  if (!tests) {
    const e = ends[0]!
    return { ...base, status: e.status, exitCode: e.exitCode, signal: e.signal, reason: e.reason }
  }
  const failing = tests.filter((t) => t.status !== 'passed')
  const counts = [...new Set(failing.map((t) => t.status))]
    .map((st) => `${failing.filter((t) => t.status === st).length} ${st}`)
    .join(', ')
  return {
    ...base,
    status: failing.length > 0 ? 'failed' : 'succeeded',
    exitCode: null,
    signal: null,
    reason: failing.length > 0 ? STEP_REASONS.testsFailed(failing.length, tests.length, counts) : null,
  }
}

/** The first TEST_OUTPUT_PREVIEW_BYTES of a case's output, whole characters only. */
function preview(text: string): string {
  if (Buffer.byteLength(text) <= TEST_OUTPUT_PREVIEW_BYTES) return text
  const buf = Buffer.from(text).subarray(0, TEST_OUTPUT_PREVIEW_BYTES)
  return buf.subarray(0, utf8Boundary(buf)).toString('utf8')
}
