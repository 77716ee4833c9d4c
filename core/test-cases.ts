import { Type, type Static } from 'typebox'

/**
 * The steps of a compiled job and of a job with test cases (`tests`, whose request
 * schema is in job-spec.ts): what the result lists for each step, and the rule that
 * says whether a case's output matched. Read by the schema, the worker and the adapters.
 */

/** The kinds of step: the compile, the one run of a job without tests, a test case. */
export const STEP_KINDS = ['compile', 'run', 'test'] as const
export type StepKind = (typeof STEP_KINDS)[number]

/** Test cases one job may carry; the program is compiled once and run once per case. */
export const MAX_TEST_CASES = 64

/**
 * The time a job of steps may ask for: its compile's limit, then each run's (one per
 * case) one after another. Held to the server's and the tenant's largest timeoutMs: a
 * job holds its worker no longer for having cases.
 */
export function stepsTimeMs(
  limits: { timeoutMs: number; compileTimeoutMs?: number | undefined },
  cases: number,
): number {
  return (limits.compileTimeoutMs ?? 0) + Math.max(1, cases) * limits.timeoutMs
}

/** The step driver's own time, beyond its steps' limits: per step (FIFOs, clock, frames, the sweep) and once. */
export const STEP_OVERHEAD_MS = 1000
export const DRIVER_OVERHEAD_MS = 2000

/** The longest a job of steps holds its sandbox: its steps at their limits, and the driver's own time. */
export function stepsWallMs(
  limits: { timeoutMs: number; compileTimeoutMs?: number | undefined },
  cases: number,
): number {
  const steps = Math.max(1, cases) + (limits.compileTimeoutMs === undefined ? 0 : 1)
  return stepsTimeMs(limits, cases) + steps * STEP_OVERHEAD_MS + DRIVER_OVERHEAD_MS
}

/**
 * What the compile's stdout and stderr may hold, each (at most limits.outputBytes): its
 * output is kept in the result, apart from the program's.
 */
export const COMPILE_OUTPUT_BYTES = 64 * 1024

/**
 * What a case's entry in the result keeps of its stdout and of its stderr: the first
 * bytes, so the record stays small however many cases there are. All of each case's
 * output is in the job's stdout and stderr, case after case (stdoutBytes and
 * stderrBytes say where one ends).
 */
export const TEST_OUTPUT_PREVIEW_BYTES = 4096

/**
 * One run's cap of stdout and of stderr, each: limits.outputBytes caps the job's
 * streams as a whole, so with test cases each case gets an equal share of it.
 */
export function runOutputBytes(outputBytes: number, runs: number): number {
  return Math.max(1, Math.floor(outputBytes / Math.max(1, runs)))
}

/**
 * The most a job's compile and test results add to its record, bytes: part of its
 * storage reservation. JSON may write an output byte as six (\u0000).
 */
export function stepResultsMaxBytes(compiles: boolean, cases: number): number {
  return (compiles ? 2 * COMPILE_OUTPUT_BYTES * 6 : 0) + cases * 2 * TEST_OUTPUT_PREVIEW_BYTES * 6 + 512 * (cases + 1)
}

/** How a case's stdout is compared with its expectedOutput, in words (docs, schema). */
export const OUTPUT_MATCH_RULE =
  'trailing-whitespace-insensitive: CRLF counts as LF, whitespace at the end of each line and blank lines at the end are ignored; everything else must be equal'

/**
 * The comparison OUTPUT_MATCH_RULE states, in one pass over each text and without making
 * its lines: it runs on the worker's event loop, on outputs of up to AIRLOCK_MAX_OUTPUT_BYTES.
 * Regexes were quadratic here (`/[ \t]+$/` is tried from every start of a run that something
 * follows: 100,000 spaces and an `x` held the loop for 4 s, found by the fourteenth
 * review), and splitting into lines cost ~0.5 s for 10 MB of newlines. The walk stops at
 * the first line that differs, and at the end of the shorter text's content. Pure.
 */
export function outputMatches(actual: string, expected: string): boolean {
  const endA = contentEnd(actual)
  const endB = contentEnd(expected)
  // An output that passes is most often the expected one, byte for byte.
  if (endA === endB && actual.slice(0, endA) === expected.slice(0, endB)) return true
  let a = 0
  let b = 0
  for (;;) {
    const nextA = lineEnd(actual, a, endA)
    const nextB = lineEnd(expected, b, endB)
    const trimmedA = trimmedEnd(actual, a, nextA)
    const trimmedB = trimmedEnd(expected, b, nextB)
    if (trimmedA - a !== trimmedB - b || actual.slice(a, trimmedA) !== expected.slice(b, trimmedB)) return false
    if (nextA === endA || nextB === endB) return nextA === endA && nextB === endB
    a = nextA + 1
    b = nextB + 1
  }
}

/** What OUTPUT_MATCH_RULE calls whitespace at the end of a line (CR among it, so CRLF counts as LF). */
const isLineEndBlank = (c: number) => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0c || c === 0x0b

/** Where `text`'s content ends: after the last character that is neither a newline nor line-end whitespace. */
function contentEnd(text: string): number {
  let end = text.length
  while (end > 0 && (text.charCodeAt(end - 1) === 0x0a || isLineEndBlank(text.charCodeAt(end - 1)))) end--
  return end
}

/** Where the line that starts at `from` ends: its newline, or the content's end. */
function lineEnd(text: string, from: number, end: number): number {
  const newline = text.indexOf('\n', from)
  return newline < 0 || newline > end ? end : newline
}

/** Where the line from `start` to `end` ends without its line-end whitespace. */
function trimmedEnd(text: string, start: number, end: number): number {
  let e = end
  while (e > start && isLineEndBlank(text.charCodeAt(e - 1))) e--
  return e
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

/** What every step (the compile, a run, a test case) reports. */
const stepFields = {
  exitCode: Nullable(Type.Integer()),
  signal: Nullable(Type.String({ description: 'Signal that ended it, e.g. SIGSEGV' })),
  timeMs: Nullable(Type.Integer({ minimum: 0, description: 'Wall-clock time of the step, measured in the sandbox' })),
  stdout: Type.String(),
  stderr: Type.String(),
  truncated: Type.Boolean({ description: 'stdout or stderr was cut at its cap' }),
}

export const COMPILE_STATUSES = ['succeeded', 'failed', 'timeout'] as const
export const CompileResultSchema = Type.Object(
  {
    status: Type.Enum(COMPILE_STATUSES, {
      type: 'string',
      title: 'CompileStatus',
      description:
        'succeeded; failed: the compiler exited non-zero or was killed (nothing was run); timeout: it ran past limits.compileTimeoutMs',
    }),
    ...stepFields,
  },
  {
    title: 'CompileResult',
    description: `The compiler's run: its output (at most ${COMPILE_OUTPUT_BYTES} bytes of each stream) is kept here, apart from the program's`,
  },
)
export type CompileResult = Static<typeof CompileResultSchema>

export const TEST_STATUSES = ['passed', 'wrong-answer', 'runtime-error', 'timeout'] as const
export const TestResultSchema = Type.Object(
  {
    status: Type.Enum(TEST_STATUSES, {
      type: 'string',
      title: 'TestStatus',
      description:
        'passed: exited 0 and stdout matched (or no expectedOutput); wrong-answer: exited 0, stdout did not match; runtime-error: exited non-zero or was killed by a signal; timeout: ran past limits.timeoutMs',
    }),
    ...stepFields,
    stdoutBytes: Type.Integer({
      minimum: 0,
      description: `Bytes the case wrote to stdout (within its cap); stdout above keeps the first ${TEST_OUTPUT_PREVIEW_BYTES}, the job's stdout all of them, case after case`,
    }),
    stderrBytes: Type.Integer({ minimum: 0, description: 'The same for stderr' }),
    matched: Nullable(
      Type.Boolean({ description: `Whether stdout matched expectedOutput (${OUTPUT_MATCH_RULE}); null without one` }),
    ),
    memoryKb: Nullable(
      Type.Integer({ description: 'Peak memory of the case; null: not measured (the sandbox is shared by the cases)' }),
    ),
  },
  { title: 'TestResult' },
)
export type TestResult = Static<typeof TestResultSchema>
export type TestStatus = TestResult['status']
