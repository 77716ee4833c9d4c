import { Type, type Static } from 'typebox'
import {
  defaultKey,
  LIMIT_BOUNDS,
  LIMIT_NAMES,
  LimitsSchema,
  maxKey,
  type Limits,
  type LimitSettingKey,
} from './limits.js'
import { AirlockError, type ErrorDetail } from './errors.js'
import { findRuntime, RUNTIMES } from './runtimes.js'
import type { Config } from './config.js'
import { MAX_TEST_CASES, OUTPUT_MATCH_RULE, stepsTimeMs } from './test-cases.js'

export { LimitsSchema, type Limits } from './limits.js'

export const MAX_FILES = 100
export const MAX_TOTAL_FILE_BYTES = 1024 * 1024
/**
 * A file path's bounds, in UTF-8 bytes: Linux (and gVisor) refuse a name segment over
 * NAME_MAX (255 bytes) with ENAMETOOLONG, and the whole path has to fit under PATH_MAX
 * (4096) with the worker's state directory in front of it on the host.
 */
export const MAX_PATH_SEGMENT_BYTES = 255
export const MAX_FILE_PATH_BYTES = 1024
export const MAX_PATH_DEPTH = 16
export const MAX_ARGS = 64
export const MAX_ARG_LENGTH = 4096
export const MAX_ENV = 64
export const MAX_ENV_NAME_LENGTH = 128
export const MAX_ENV_VALUE_LENGTH = 4096
/** All of env as the kernel counts it (NAME=value and a NUL each), bytes; checked by resolveJobSpec. */
export const MAX_TOTAL_ENV_BYTES = 64 * 1024
/**
 * A POSIX name (IEEE Std 1003.1, 3.235): what every shell and libc accepts as a
 * variable, and never anything that could split an assignment ('=', newline, NUL).
 */
export const ENV_NAME_PATTERN = `^[A-Za-z_][A-Za-z0-9_]{0,${MAX_ENV_NAME_LENGTH - 1}}$`
const ENV_NAME = new RegExp(ENV_NAME_PATTERN)

export const FILE_ENCODINGS = ['utf8', 'base64'] as const

export const JobFileSchema = Type.Object(
  {
    // In characters here (a character is at least a byte); filePathProblem counts bytes.
    path: Type.String({ minLength: 1, maxLength: MAX_FILE_PATH_BYTES }),
    // Base64 takes 4 characters for 3 bytes.
    content: Type.String({
      maxLength: Math.ceil(MAX_TOTAL_FILE_BYTES / 3) * 4,
      description: `The file's text, or its bytes in base64 with encoding: base64; ${MAX_TOTAL_FILE_BYTES} bytes in all files together`,
    }),
    encoding: Type.Optional(
      Type.Enum(FILE_ENCODINGS, {
        type: 'string',
        title: 'FileEncoding',
        description:
          'utf8 (default): content is the text; base64: content is the bytes, base64-encoded (RFC 4648, with padding)',
      }),
    ),
  },
  { additionalProperties: false, title: 'JobFile' },
)

/**
 * additionalProperties: false is what makes the name pattern a rule: TypeBox's Record
 * emits the key type as patternProperties, which by itself lets any other key through
 * with any value.
 */
export const JobEnvSchema = Type.Record(
  Type.String({ pattern: ENV_NAME_PATTERN }),
  Type.String({ maxLength: MAX_ENV_VALUE_LENGTH }),
  {
    maxProperties: MAX_ENV,
    additionalProperties: false,
    description: `Variables for the program: at most ${MAX_ENV}, names matching ${ENV_NAME_PATTERN}, values of at most ${MAX_ENV_VALUE_LENGTH} characters, ${MAX_TOTAL_ENV_BYTES} bytes in all`,
  },
)

export const TestCaseSchema = Type.Object(
  {
    stdin: Type.Optional(Type.String({ maxLength: MAX_TOTAL_FILE_BYTES, description: "The case's standard input" })),
    args: Type.Optional(
      Type.Array(Type.String({ maxLength: MAX_ARG_LENGTH }), {
        maxItems: MAX_ARGS,
        description: "The program's arguments in this case, instead of the job's args",
      }),
    ),
    expectedOutput: Type.Optional(
      Type.String({
        maxLength: MAX_TOTAL_FILE_BYTES,
        description: `What stdout should be, compared ${OUTPUT_MATCH_RULE}. It never enters the sandbox: the worker compares.`,
      }),
    ),
  },
  { additionalProperties: false, title: 'TestCase' },
)

/** All of the cases' stdin, args and expected output, bytes; checked by resolveJobSpec. */
export const MAX_TOTAL_TEST_BYTES = MAX_TOTAL_FILE_BYTES

export const TestCasesSchema = Type.Array(TestCaseSchema, {
  minItems: 1,
  maxItems: MAX_TEST_CASES,
  description: `Run the program once per case (compiled once, first), each with its own stdin and args, time limit (limits.timeoutMs) and output cap (limits.outputBytes); the result lists each case in tests. At most ${MAX_TEST_CASES}, with ${MAX_TOTAL_TEST_BYTES} bytes of stdin, args and expected output in all`,
})

/** A runtime of the catalog, by name. */
export const RuntimeNameSchema = Type.Enum(
  RUNTIMES.map((r) => r.name),
  { type: 'string', title: 'RuntimeName', description: RUNTIMES.map((r) => `${r.name}: ${r.description}`).join('; ') },
)

/**
 * An unknown runtime keeps its own code (AIRLOCK_ERR_UNKNOWN_RUNTIME), published before
 * the schema listed the names: checked ahead of the schema, as resolveJobSpec does.
 */
export function unknownRuntimeError(body: unknown): AirlockError | undefined {
  const runtime = (body as { runtime?: unknown } | null)?.runtime
  if (typeof runtime !== 'string' || findRuntime(runtime)) return undefined
  return new AirlockError(
    'AIRLOCK_ERR_UNKNOWN_RUNTIME',
    `unknown runtime ${JSON.stringify(runtime)}; available: ${RUNTIMES.map((r) => r.name).join(', ')}`,
    [{ path: '/runtime', message: 'unknown runtime' }],
  )
}

export const JobRequestSchema = Type.Object(
  {
    runtime: RuntimeNameSchema,
    source: Type.Optional(
      Type.String({
        maxLength: MAX_TOTAL_FILE_BYTES,
        description: "Program text; stored as the runtime's default entrypoint",
      }),
    ),
    files: Type.Optional(Type.Array(JobFileSchema, { minItems: 1, maxItems: MAX_FILES })),
    entrypoint: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_FILE_PATH_BYTES })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: MAX_ARG_LENGTH }), { maxItems: MAX_ARGS })),
    stdin: Type.Optional(Type.String({ maxLength: MAX_TOTAL_FILE_BYTES })),
    env: Type.Optional(JobEnvSchema),
    limits: Type.Optional(LimitsSchema),
    tests: Type.Optional(TestCasesSchema),
    isolation: Type.Optional(
      Type.Enum(['gvisor', 'runc'], {
        type: 'string',
        title: 'IsolationChoice',
        description:
          'gvisor (default). runc: a plain container with no gVisor, for benchmarks only; refused (403) unless the tenant is in AIRLOCK_BENCH_TENANTS',
      }),
    ),
  },
  { additionalProperties: false, title: 'JobRequest' },
)

export type JobRequest = Static<typeof JobRequestSchema>

export interface TestCase {
  stdin: string
  args: string[]
  expectedOutput?: string
}

export interface JobFile {
  path: string
  content: string
  /** base64: `content` is the file's bytes, base64-encoded. */
  encoding?: (typeof FILE_ENCODINGS)[number]
}

/** A file's bytes, as the sandbox gets them. */
export function fileBytes(file: JobFile): Buffer {
  return Buffer.from(file.content, file.encoding === 'base64' ? 'base64' : 'utf8')
}

const BASE64_ALPHABET = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[c.charCodeAt(0)] = 1

/**
 * Base64 as RFC 4648 writes it: groups of four, padded. A loop, not the regex it was
 * (`^(?:[A-Za-z0-9+/]{4})*(?:...)?$`): that took 35-80 ms of the event loop for a 2 MB
 * body's file, this 3-12 ms (found by a code review).
 */
function isBase64(text: string): boolean {
  if (text.length % 4 !== 0) return false
  const end = text.length - (text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0)
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c > 127 || BASE64_ALPHABET[c] === 0) return false
  }
  return true
}

/** A validated, normalized job: every default applied, every bound checked. */
export interface JobSpec {
  runtime: string
  files: JobFile[]
  entrypoint: string
  args: string[]
  stdin: string
  env: Record<string, string>
  limits: Limits
  /** runc only for benchmark tenants (checked at the edge); absent in records made before it existed. */
  isolation?: 'gvisor' | 'runc'
  /** Run once per case instead of once (compiled first, once); absent: one run with stdin and args. */
  tests?: TestCase[]
  /**
   * Set by the worker on the spec it hands its executor, never by a client: the
   * sandbox's program instead of the runtime's command (worker/steps/, which runs a
   * compiled job's steps and its test cases).
   */
  program?: string[]
  /**
   * Set by the worker with `program`: how many bytes of text the executor keeps of each
   * stream, where that is not `limits.outputBytes` (the step driver's streams: each
   * step's output is cut to its own cap as text by the step parser, and a byte written
   * may be kept as three). `limits.outputBytes` still bounds the bytes written.
   */
  outputTextBytes?: number
}

export type LimitsPolicy = Pick<Config, LimitSettingKey | 'maxTestCases'>

// Names the sandbox sets itself; a job may not override them.
const RESERVED_ENV = new Set(['PATH', 'HOME', 'PWD'])

/** Checks a relative file path inside the workspace; returns what is wrong, or undefined. */
export function filePathProblem(path: string): string | undefined {
  if (path.includes('\0')) return 'contains a NUL byte'
  if (path.startsWith('/')) return 'must be relative to the workspace'
  if (path.includes('\\')) return 'must use / as separator'
  const parts = path.split('/')
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return "must not contain empty, '.' or '..' segments"
  if (parts.length > MAX_PATH_DEPTH) return `is nested too deeply (${MAX_PATH_DEPTH} levels at most)`
  // Checked here rather than left to the filesystem, whose ENAMETOOLONG would come
  // from the worker, past the edge.
  if (parts.some((p) => utf8Bytes(p) > MAX_PATH_SEGMENT_BYTES))
    return `has a name longer than ${MAX_PATH_SEGMENT_BYTES} bytes`
  if (utf8Bytes(path) > MAX_FILE_PATH_BYTES) return `is longer than ${MAX_FILE_PATH_BYTES} bytes`
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) return 'contains control characters'
  return undefined
}

function resolveLimits(requested: JobRequest['limits'], policy: LimitsPolicy, compiles: boolean): Limits {
  const limits = {} as Limits
  for (const name of LIMIT_NAMES) limits[name] = requested?.[name] ?? policy[defaultKey(name)]
  if (compiles) {
    const byDefault = Math.min(policy.defaultCompileTimeoutMs, policy.maxTimeoutMs)
    limits.compileTimeoutMs = requested?.compileTimeoutMs ?? byDefault
  }
  const over: ErrorDetail[] = LIMIT_BOUNDS.flatMap(([field, bound]) => {
    const value = limits[field]
    const max = policy[maxKey(bound)]
    return (value ?? 0) > max
      ? [{ path: `/limits/${field}`, message: `${value} is above this server's maximum of ${max}` }]
      : []
  })
  if (over.length > 0) {
    const names = over.map((o) => o.path.slice('/limits/'.length)).join(', ')
    throw new AirlockError('AIRLOCK_ERR_LIMIT_EXCEEDED', `limits above the server maximum: ${names}`, over)
  }
  return limits
}

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/** Characters as JSON Schema's maxLength counts them: code points, not UTF-16 units. */
function characters(s: string): number {
  let n = 0
  for (const _ of s) n++
  return n
}

/** One variable as the kernel counts it in a process's environment: NAME=value and its NUL. */
export function envEntryBytes(name: string, value: string): number {
  return utf8Bytes(name) + 1 + utf8Bytes(value) + 1
}

/**
 * The job's variables, or an AirlockError saying which is wrong. The schema refuses
 * bad names and values already; they are checked again so that a request that did not
 * go through it is still a 400, never a TypeError.
 */
function checkEnv(env: Record<string, string>): Record<string, string> {
  const entries = Object.entries(env)
  if (entries.length > MAX_ENV)
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `env has ${entries.length} variables; at most ${MAX_ENV} are allowed`,
      [{ path: '/env', message: 'too many' }],
    )
  let bytes = 0
  for (const [name, value] of entries) {
    if (!ENV_NAME.test(name))
      throw new AirlockError(
        'AIRLOCK_ERR_VALIDATION',
        `env name ${JSON.stringify(name.slice(0, 64))} is not a POSIX name of at most ${MAX_ENV_NAME_LENGTH} characters`,
        [{ path: '/env', message: 'bad name' }],
      )
    if (typeof value !== 'string' || characters(value) > MAX_ENV_VALUE_LENGTH)
      throw new AirlockError(
        'AIRLOCK_ERR_VALIDATION',
        `env ${name} must be a string of at most ${MAX_ENV_VALUE_LENGTH} characters`,
        [{ path: `/env/${name}`, message: 'bad value' }],
      )
    if (RESERVED_ENV.has(name))
      throw new AirlockError('AIRLOCK_ERR_VALIDATION', `env ${name} is set by the sandbox and cannot be overridden`, [
        { path: `/env/${name}`, message: 'reserved' },
      ])
    if (value.includes('\0'))
      throw new AirlockError('AIRLOCK_ERR_VALIDATION', `env ${name} contains a NUL byte`, [
        { path: `/env/${name}`, message: 'NUL byte' },
      ])
    bytes += envEntryBytes(name, value)
  }
  if (bytes > MAX_TOTAL_ENV_BYTES) {
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `env adds up to ${bytes} bytes; at most ${MAX_TOTAL_ENV_BYTES} are allowed`,
      [{ path: '/env', message: 'too large' }],
    )
  }
  return env
}

/**
 * Turns a request into a JobSpec, or throws an AirlockError (4xx) that says what is
 * wrong. Every entry point's request comes through here, an adapter's built without the
 * route's schema too, so the bounds on what a job carries (files, args, env, stdin, test
 * cases) are held here as well. Pure: no I/O, so every rule here is tested directly.
 */
export function resolveJobSpec(request: JobRequest, policy: LimitsPolicy): JobSpec {
  const runtime = findRuntime(request.runtime)
  if (!runtime) throw unknownRuntimeError(request)!
  if (request.source !== undefined && request.files !== undefined) {
    throw new AirlockError('AIRLOCK_ERR_VALIDATION', 'send either source or files, not both', [
      { path: '/files', message: 'not allowed together with source' },
    ])
  }
  let files: JobFile[]
  if (request.source !== undefined) {
    files = [{ path: runtime.defaultEntrypoint, content: request.source }]
  } else if (request.files !== undefined && request.files.length > MAX_FILES) {
    throw new AirlockError(
      'AIRLOCK_ERR_INVALID_FILE',
      `${request.files.length} files; at most ${MAX_FILES} are allowed`,
      [{ path: '/files', message: 'too many' }],
    )
  } else if (request.files !== undefined && request.files.length > 0) {
    files = request.files
  } else {
    throw new AirlockError('AIRLOCK_ERR_SOURCE_REQUIRED', 'a job needs source or at least one file', [
      { path: '/source', message: 'required when files is absent' },
    ])
  }

  const seen = new Set<string>()
  let total = 0
  files.forEach((file, i) => {
    const problem = filePathProblem(file.path)
    if (problem)
      throw new AirlockError('AIRLOCK_ERR_INVALID_FILE', `file path ${JSON.stringify(file.path)} ${problem}`, [
        { path: `/files/${i}/path`, message: problem },
      ])
    if (seen.has(file.path))
      throw new AirlockError('AIRLOCK_ERR_INVALID_FILE', `file ${JSON.stringify(file.path)} is given twice`, [
        { path: `/files/${i}/path`, message: 'duplicate path' },
      ])
    // A file that is also a directory of another ("a" and "a/b") cannot be laid out.
    for (const other of seen) {
      if (other.startsWith(`${file.path}/`) || file.path.startsWith(`${other}/`)) {
        throw new AirlockError(
          'AIRLOCK_ERR_INVALID_FILE',
          `file ${JSON.stringify(file.path)} collides with ${JSON.stringify(other)}`,
          [{ path: `/files/${i}/path`, message: 'is both a file and a directory' }],
        )
      }
    }
    seen.add(file.path)
    // Node's decoder skips what is not base64; a file must not arrive other than it was sent.
    if (file.encoding === 'base64' && !isBase64(file.content)) {
      throw new AirlockError(
        'AIRLOCK_ERR_INVALID_FILE',
        `file ${JSON.stringify(file.path)} is not base64 (RFC 4648, with padding)`,
        [{ path: `/files/${i}/content`, message: 'not base64' }],
      )
    }
    total += Buffer.byteLength(file.content, file.encoding === 'base64' ? 'base64' : 'utf8')
  })
  if (total > MAX_TOTAL_FILE_BYTES) {
    throw new AirlockError(
      'AIRLOCK_ERR_INVALID_FILE',
      `files add up to ${total} bytes; at most ${MAX_TOTAL_FILE_BYTES} are allowed`,
      [{ path: '/files', message: 'too large' }],
    )
  }

  const entrypoint =
    request.entrypoint ??
    (seen.has(runtime.defaultEntrypoint) ? runtime.defaultEntrypoint : files.length === 1 ? files[0]!.path : undefined)
  if (entrypoint === undefined) {
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `entrypoint is required when there are several files and none is ${runtime.defaultEntrypoint}`,
      [{ path: '/entrypoint', message: 'required' }],
    )
  }
  if (!seen.has(entrypoint)) {
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `entrypoint ${JSON.stringify(entrypoint)} is not one of the files`,
      [{ path: '/entrypoint', message: 'not among files' }],
    )
  }

  const env = checkEnv(request.env ?? {})
  const args = checkArgs(request.args ?? [], '/args')
  const stdin = checkStdin(request.stdin ?? '')

  const tests = request.tests === undefined ? undefined : checkTests(request.tests, policy.maxTestCases)
  const limits = resolveLimits(request.limits, policy, runtime.compile !== undefined)
  if (tests) {
    const total = stepsTimeMs(limits, tests.length)
    if (total > policy.maxTimeoutMs) {
      throw new AirlockError(
        'AIRLOCK_ERR_LIMIT_EXCEEDED',
        stepsTooLong(tests.length, limits, total, policy.maxTimeoutMs, "this server's"),
        [{ path: '/tests', message: `${total} ms in all is above ${policy.maxTimeoutMs}` }],
      )
    }
  }
  return {
    runtime: runtime.name,
    files,
    entrypoint,
    args,
    stdin,
    env,
    limits,
    isolation: request.isolation ?? 'gvisor',
    ...(tests ? { tests } : {}),
  }
}

/** Why a job's cases may not ask for so much time, in words (the server's or the tenant's maximum). */
export function stepsTooLong(cases: number, limits: Limits, total: number, max: number, whose: string): string {
  const compile = limits.compileTimeoutMs === undefined ? '' : ` and a compile of ${limits.compileTimeoutMs} ms`
  return `${cases} test cases of ${limits.timeoutMs} ms${compile} add up to ${total} ms; ${whose} maximum for one job is ${max} ms: lower limits.timeoutMs or send fewer cases`
}

/**
 * The job's stdin, held to the schema's bound here too: an adapter (Judge0) builds its
 * request without the route's schema, and every entry point comes through this check.
 */
function checkStdin(stdin: unknown): string {
  // Code points never outnumber UTF-16 units: only a long string needs counting.
  if (typeof stdin !== 'string' || (stdin.length > MAX_TOTAL_FILE_BYTES && characters(stdin) > MAX_TOTAL_FILE_BYTES))
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `stdin must be a string of at most ${MAX_TOTAL_FILE_BYTES} characters`,
      [{ path: '/stdin', message: `must be a string of at most ${MAX_TOTAL_FILE_BYTES} characters` }],
    )
  return stdin
}

/** Arguments of the job or of a case: strings of bounded length without NUL bytes. */
function checkArgs(args: unknown[], at: string): string[] {
  if (args.length > MAX_ARGS)
    throw new AirlockError('AIRLOCK_ERR_VALIDATION', `${args.length} arguments; at most ${MAX_ARGS} are allowed`, [
      { path: at, message: 'too many' },
    ])
  args.forEach((a, i) => {
    if (typeof a !== 'string' || characters(a) > MAX_ARG_LENGTH)
      throw new AirlockError(
        'AIRLOCK_ERR_VALIDATION',
        `argument ${i} must be a string of at most ${MAX_ARG_LENGTH} characters`,
        [{ path: `${at}/${i}`, message: 'bad argument' }],
      )
    if (a.includes('\0'))
      throw new AirlockError('AIRLOCK_ERR_VALIDATION', 'arguments must not contain NUL bytes', [
        { path: `${at}/${i}`, message: 'NUL byte' },
      ])
  })
  return args as string[]
}

/** The cases, normalized (stdin '' and args [] when absent), within their count and bytes. */
function checkTests(tests: NonNullable<JobRequest['tests']>, maxCases: number): TestCase[] {
  if (tests.length === 0 || tests.length > maxCases) {
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `tests has ${tests.length} cases; this server takes from 1 to ${maxCases}`,
      [{ path: '/tests', message: 'bad count' }],
    )
  }
  let bytes = 0
  const cases = tests.map((t, i): TestCase => {
    const args = checkArgs(t.args ?? [], `/tests/${i}/args`)
    bytes += utf8Bytes(t.stdin ?? '') + utf8Bytes(t.expectedOutput ?? '') + args.reduce((n, a) => n + utf8Bytes(a), 0)
    return {
      stdin: t.stdin ?? '',
      args,
      ...(t.expectedOutput !== undefined ? { expectedOutput: t.expectedOutput } : {}),
    }
  })
  if (bytes > MAX_TOTAL_TEST_BYTES) {
    throw new AirlockError(
      'AIRLOCK_ERR_VALIDATION',
      `tests add up to ${bytes} bytes; at most ${MAX_TOTAL_TEST_BYTES} are allowed`,
      [{ path: '/tests', message: 'too large' }],
    )
  }
  return cases
}
