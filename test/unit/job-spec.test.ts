import t from 'tap'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyRouteSchemaDef } from 'fastify/types/schema.js'
import type { TSchema } from 'typebox'
import { loadConfig } from '../../core/config.js'
import { jobLimitsOverQuota, tenantLimitsPolicy } from '../../core/quotas.js'
import { AirlockError } from '../../core/errors.js'
import {
  filePathProblem,
  JobRequestSchema,
  MAX_ARG_LENGTH,
  MAX_ENV,
  MAX_ENV_NAME_LENGTH,
  MAX_ENV_VALUE_LENGTH,
  MAX_FILE_PATH_BYTES,
  MAX_PATH_SEGMENT_BYTES,
  MAX_TOTAL_ENV_BYTES,
  resolveJobSpec,
  type JobRequest,
} from '../../core/job-spec.js'

const policy = loadConfig({})

function codeOf(request: JobRequest): string | undefined {
  try {
    resolveJobSpec(request, policy)
    return undefined
  } catch (err) {
    return err instanceof AirlockError ? err.code : 'not an AirlockError'
  }
}

t.test('a source job gets the runtime default entrypoint and default limits', async (t) => {
  const spec = resolveJobSpec({ runtime: 'python', source: 'print(1)' }, policy)
  t.same(spec.files, [{ path: 'main.py', content: 'print(1)' }])
  t.equal(spec.entrypoint, 'main.py')
  t.same(spec.limits, {
    timeoutMs: policy.defaultTimeoutMs,
    memoryMb: policy.defaultMemoryMb,
    cpus: policy.defaultCpus,
    pids: policy.defaultPids,
    outputBytes: policy.defaultOutputBytes,
  })
  t.equal(spec.stdin, '')
  t.same(spec.args, [])
})

t.test('requested limits replace the defaults when within the maximums', async (t) => {
  const spec = resolveJobSpec(
    { runtime: 'node', source: '1', limits: { timeoutMs: 2000, memoryMb: 128, cpus: 0.5, pids: 8, outputBytes: 100 } },
    policy,
  )
  t.same(spec.limits, { timeoutMs: 2000, memoryMb: 128, cpus: 0.5, pids: 8, outputBytes: 100 })
})

t.test('each limit above its maximum is named in the error', async (t) => {
  try {
    resolveJobSpec(
      {
        runtime: 'bash',
        source: 'true',
        limits: { timeoutMs: policy.maxTimeoutMs + 1, memoryMb: policy.maxMemoryMb + 1 },
      },
      policy,
    )
    t.fail('expected an error')
  } catch (err) {
    const e = err as AirlockError
    t.equal(e.code, 'AIRLOCK_ERR_LIMIT_EXCEEDED')
    t.equal(e.statusCode, 400)
    t.same(
      e.details?.map((d) => d.path),
      ['/limits/timeoutMs', '/limits/memoryMb'],
    )
    t.match(e.message, /timeoutMs, memoryMb/)
  }
})

t.test('unknown runtime, missing source and source with files are refused with their codes', async (t) => {
  t.equal(codeOf({ runtime: 'cobol', source: 'x' }), 'AIRLOCK_ERR_UNKNOWN_RUNTIME')
  t.equal(codeOf({ runtime: 'python' }), 'AIRLOCK_ERR_SOURCE_REQUIRED')
  t.equal(codeOf({ runtime: 'python', files: [] }), 'AIRLOCK_ERR_SOURCE_REQUIRED')
  t.equal(codeOf({ runtime: 'python', source: 'x', files: [{ path: 'a.py', content: '' }] }), 'AIRLOCK_ERR_VALIDATION')
})

t.test('file paths that could leave the workspace are refused', async (t) => {
  for (const path of [
    '/etc/passwd',
    '../x',
    'a/../../x',
    'a//b',
    './a',
    'a\\b',
    'a\0b',
    'a\nb',
    `${'x/'.repeat(17)}y`,
  ]) {
    t.ok(filePathProblem(path), `refuses ${JSON.stringify(path)}`)
    t.equal(
      codeOf({ runtime: 'python', files: [{ path, content: '' }], entrypoint: path }),
      'AIRLOCK_ERR_INVALID_FILE',
      `code for ${JSON.stringify(path)}`,
    )
  }
  for (const path of ['main.py', 'pkg/mod.py', 'a.b/c-d_e.txt', '..hidden']) {
    t.equal(filePathProblem(path), undefined, `accepts ${JSON.stringify(path)}`)
  }
})

t.test('duplicate files and a file that is also a directory are refused', async (t) => {
  t.equal(
    codeOf({
      runtime: 'python',
      files: [
        { path: 'a.py', content: '' },
        { path: 'a.py', content: '' },
      ],
    }),
    'AIRLOCK_ERR_INVALID_FILE',
  )
  t.equal(
    codeOf({
      runtime: 'python',
      files: [
        { path: 'a', content: '' },
        { path: 'a/b.py', content: '' },
      ],
      entrypoint: 'a/b.py',
    }),
    'AIRLOCK_ERR_INVALID_FILE',
  )
})

t.test('the entrypoint defaults sensibly and must be one of the files', async (t) => {
  t.equal(resolveJobSpec({ runtime: 'python', files: [{ path: 'app.py', content: '' }] }, policy).entrypoint, 'app.py')
  t.equal(
    resolveJobSpec(
      {
        runtime: 'python',
        files: [
          { path: 'lib.py', content: '' },
          { path: 'main.py', content: '' },
        ],
      },
      policy,
    ).entrypoint,
    'main.py',
  )
  t.equal(
    codeOf({
      runtime: 'python',
      files: [
        { path: 'a.py', content: '' },
        { path: 'b.py', content: '' },
      ],
    }),
    'AIRLOCK_ERR_VALIDATION',
  )
  t.equal(
    codeOf({ runtime: 'python', files: [{ path: 'a.py', content: '' }], entrypoint: 'b.py' }),
    'AIRLOCK_ERR_VALIDATION',
  )
})

t.test('env may not override sandbox variables or carry NUL bytes; args may not carry NUL bytes', async (t) => {
  t.equal(codeOf({ runtime: 'bash', source: 'env', env: { PATH: '/tmp' } }), 'AIRLOCK_ERR_VALIDATION')
  t.equal(codeOf({ runtime: 'bash', source: 'env', env: { A: 'x\0y' } }), 'AIRLOCK_ERR_VALIDATION')
  t.equal(codeOf({ runtime: 'bash', source: 'env', args: ['ok', 'x\0'] }), 'AIRLOCK_ERR_VALIDATION')
  t.same(resolveJobSpec({ runtime: 'bash', source: 'env', env: { A: '1' }, args: ['x'] }, policy).env, { A: '1' })
})

t.test('files larger than the total cap are refused', async (t) => {
  const big = 'x'.repeat(600 * 1024)
  t.equal(
    codeOf({
      runtime: 'python',
      files: [
        { path: 'a.py', content: big },
        { path: 'b.py', content: big },
      ],
      entrypoint: 'a.py',
    }),
    'AIRLOCK_ERR_INVALID_FILE',
  )
})

/** The body validator fastify runs for POST /v1/jobs (api/app.ts sets this compiler). */
const validateBody = TypeBoxValidatorCompiler({
  schema: JobRequestSchema,
  httpPart: 'body',
  method: 'POST',
  url: '/v1/jobs',
} as FastifyRouteSchemaDef<TSchema>)
function schemaAccepts(body: unknown): boolean {
  const result = validateBody(body) as { error?: unknown }
  return result.error === undefined
}

t.test(
  'env names are POSIX names and values bounded strings, refused by the schema itself (a 400, not a TypeError)',
  async (t) => {
    const job = (env: unknown) => ({ runtime: 'bash', source: 'env', env })
    const badNames = [
      'N-1',
      'A=B',
      'A\nB',
      'A\n',
      '\nA',
      'A\0',
      'A B',
      '1A',
      '',
      'É',
      'X"; cat /dev/zero >&2; : "',
      '$(reboot)',
      'a'.repeat(MAX_ENV_NAME_LENGTH + 1),
    ]
    for (const name of badNames)
      t.notOk(schemaAccepts(job({ [name]: 'x' })), `refuses the name ${JSON.stringify(name)}`)
    t.notOk(schemaAccepts(job({ 'N-1': { a: 1 } })), 'an object under a bad name (was a 500)')
    for (const value of [{ a: 1 }, 1, true, null, ['x']])
      t.notOk(schemaAccepts(job({ GOOD: value })), `refuses the value ${JSON.stringify(value)}`)
    t.notOk(schemaAccepts(job({ A: 'x'.repeat(MAX_ENV_VALUE_LENGTH + 1) })), 'a value over the bound')
    t.notOk(schemaAccepts(job({ A: 'x'.repeat(200_000) })), 'a 200 kB value')
    t.notOk(
      schemaAccepts(job(Object.fromEntries(Array.from({ length: MAX_ENV + 1 }, (_, i) => [`V${i}`, '1'])))),
      'too many variables',
    )
    t.notOk(schemaAccepts(job(['A=1'])), 'env is an object, not a list')

    const good = {
      A: '1',
      _x: '',
      a9_B: 'with spaces, = and\nnewlines',
      ['L'.repeat(MAX_ENV_NAME_LENGTH)]: 'x'.repeat(MAX_ENV_VALUE_LENGTH),
    }
    t.ok(schemaAccepts(job(good)), 'good names and values pass the schema')
    t.ok(
      schemaAccepts(job(Object.fromEntries(Array.from({ length: MAX_ENV }, (_, i) => [`V${i}`, '1'])))),
      `${MAX_ENV} variables pass`,
    )
    t.same(resolveJobSpec(job(good) as JobRequest, policy).env, good)
  },
)

t.test('resolveJobSpec refuses what the schema refuses, for a request that did not go through it', async (t) => {
  const env = (e: unknown) => codeOf({ runtime: 'bash', source: 'env', env: e as Record<string, string> })
  for (const name of ['N-1', 'A=B', 'A\n', 'A\0', 'a'.repeat(MAX_ENV_NAME_LENGTH + 1)])
    t.equal(env({ [name]: 'x' }), 'AIRLOCK_ERR_VALIDATION', `name ${JSON.stringify(name)}`)
  t.equal(env({ 'N-1': { a: 1 } }), 'AIRLOCK_ERR_VALIDATION', 'an object value under a bad name')
  t.equal(env({ A: { a: 1 } }), 'AIRLOCK_ERR_VALIDATION', 'an object value')
  t.equal(env({ A: 7 }), 'AIRLOCK_ERR_VALIDATION', 'a number')
  t.equal(env({ A: 'x'.repeat(MAX_ENV_VALUE_LENGTH + 1) }), 'AIRLOCK_ERR_VALIDATION', 'a long value')
  t.equal(
    env(Object.fromEntries(Array.from({ length: MAX_ENV + 1 }, (_, i) => [`V${i}`, '1']))),
    'AIRLOCK_ERR_VALIDATION',
    'too many',
  )
  const args = (a: unknown) => codeOf({ runtime: 'bash', source: 'env', args: a as string[] })
  t.equal(args(['x'.repeat(MAX_ARG_LENGTH + 1)]), 'AIRLOCK_ERR_VALIDATION', 'a long argument')
  t.equal(args([{ a: 1 }]), 'AIRLOCK_ERR_VALIDATION', 'an argument that is not a string')
  t.equal(args(Array.from({ length: 65 }, () => 'a')), 'AIRLOCK_ERR_VALIDATION', 'too many arguments')
  t.equal(args(['x'.repeat(MAX_ARG_LENGTH)]), undefined, 'an argument at the bound')
})

t.test('env adding up to more than its total is refused, naming /env', async (t) => {
  // 32 values of 4000 characters: each within its bound, 128 kB together.
  const env = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`V${i}`, 'x'.repeat(4000)]))
  t.ok(schemaAccepts({ runtime: 'bash', source: 'env', env }), 'the schema cannot see the total')
  try {
    resolveJobSpec({ runtime: 'bash', source: 'env', env }, policy)
    t.fail('expected an error')
  } catch (err) {
    const e = err as AirlockError
    t.equal(e.code, 'AIRLOCK_ERR_VALIDATION')
    t.equal(e.statusCode, 400)
    t.same(
      e.details?.map((d) => d.path),
      ['/env'],
    )
    t.match(e.message, new RegExp(`at most ${MAX_TOTAL_ENV_BYTES}`))
  }
  // Multi-byte characters count as the bytes they are.
  const wide = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`W${i}`, '€'.repeat(4000)]))
  t.equal(
    codeOf({ runtime: 'bash', source: 'env', env: wide }),
    'AIRLOCK_ERR_VALIDATION',
    '6 x 4000 three-byte characters',
  )
  t.equal(
    codeOf({
      runtime: 'bash',
      source: 'env',
      env: Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`V${i}`, 'x'.repeat(4000)])),
    }),
    undefined,
    '60 kB is within the total',
  )
})

t.test('file names and paths the filesystem would refuse are refused at the edge', async (t) => {
  const segment = 'a'.repeat(MAX_PATH_SEGMENT_BYTES)
  const cases: [string, boolean][] = [
    [segment, true],
    [`${segment}a`, false],
    [`dir/${segment}a.py`, false],
    ['é'.repeat(128), false], // 256 bytes in 128 characters
    ['é'.repeat(127), true],
    [Array.from({ length: 5 }, () => 'b'.repeat(205)).join('/'), false], // 1029 bytes
    [Array.from({ length: 4 }, () => 'b'.repeat(250)).join('/'), true], // 1003 bytes
  ]
  for (const [path, ok] of cases) {
    t.equal(
      filePathProblem(path) === undefined,
      ok,
      `${ok ? 'accepts' : 'refuses'} a path of ${Buffer.byteLength(path)} bytes`,
    )
    if (!ok)
      t.equal(
        codeOf({ runtime: 'python', files: [{ path, content: '' }], entrypoint: path }),
        'AIRLOCK_ERR_INVALID_FILE',
      )
  }
  t.ok(filePathProblem('x'.repeat(MAX_FILE_PATH_BYTES + 1))?.includes('bytes'))
  t.ok(
    schemaAccepts({ runtime: 'python', files: [{ path: cases[6]![0], content: '' }] }),
    'the schema lets a long nested path through to be counted in bytes',
  )
})

t.test('test cases: normalized, counted and bounded; a compile time limit only for compiled runtimes', async (t) => {
  const spec = resolveJobSpec(
    { runtime: 'cpp', source: 'int main(){}', tests: [{ stdin: '1' }, { args: ['a'], expectedOutput: '2' }] },
    policy,
  )
  t.same(spec.tests, [
    { stdin: '1', args: [] },
    { stdin: '', args: ['a'], expectedOutput: '2' },
  ])
  t.equal(spec.limits.compileTimeoutMs, policy.defaultCompileTimeoutMs)
  t.equal(
    resolveJobSpec({ runtime: 'python', source: 'print(1)', limits: { compileTimeoutMs: 500 } }, policy).limits
      .compileTimeoutMs,
    undefined,
    'an interpreter has none',
  )
  t.equal(
    codeOf({ runtime: 'cpp', source: 'x', limits: { compileTimeoutMs: policy.maxTimeoutMs + 1 } }),
    'AIRLOCK_ERR_LIMIT_EXCEEDED',
  )
  t.equal(codeOf({ runtime: 'python', source: 'x', tests: [] }), 'AIRLOCK_ERR_VALIDATION')
  t.equal(
    codeOf({ runtime: 'python', source: 'x', tests: Array.from({ length: policy.maxTestCases + 1 }, () => ({})) }),
    'AIRLOCK_ERR_VALIDATION',
    'past AIRLOCK_MAX_TEST_CASES',
  )
  t.equal(
    codeOf({ runtime: 'python', source: 'x', tests: [{ args: ['a\0b'] }] }),
    'AIRLOCK_ERR_VALIDATION',
    'a NUL in a case argument',
  )
  const half = 'x'.repeat(600 * 1024)
  t.equal(
    codeOf({ runtime: 'python', source: 'x', tests: [{ stdin: half }, { expectedOutput: half }] }),
    'AIRLOCK_ERR_VALIDATION',
    'all cases together past their byte bound',
  )
  t.equal(codeOf({ runtime: 'python', source: 'x', tests: [{ stdin: 'a' }] }), undefined)
  const cases = Math.floor(policy.maxTimeoutMs / 10_000) + 1
  t.equal(
    codeOf({
      runtime: 'python',
      source: 'x',
      limits: { timeoutMs: 10_000 },
      tests: Array.from({ length: cases }, () => ({})),
    }),
    'AIRLOCK_ERR_LIMIT_EXCEEDED',
    "the cases' time limits together past the largest timeoutMs",
  )
  const tooLong = (() => {
    try {
      resolveJobSpec(
        { runtime: 'cpp', source: 'x', limits: { timeoutMs: 150_000, compileTimeoutMs: 60_000 }, tests: [{}, {}] },
        policy,
      )
    } catch (err) {
      return (err as AirlockError).message
    }
  })()
  t.equal(
    tooLong,
    `2 test cases of 150000 ms and a compile of 60000 ms add up to 360000 ms; this server's maximum for one job is ${policy.maxTimeoutMs} ms: lower limits.timeoutMs or send fewer cases`,
  )
})

t.test("a tenant's quotas lower the defaults they bound, the compile step's included", async (t) => {
  const quotas = { maxTimeoutMs: 10_000, maxMemoryMb: 128 }
  const tenantPolicy = tenantLimitsPolicy(policy, quotas)
  const asked = resolveJobSpec({ runtime: 'cpp', source: 'int main(){}' }, tenantPolicy).limits
  t.equal(asked.timeoutMs, Math.min(policy.defaultTimeoutMs, 10_000))
  t.equal(asked.memoryMb, 128)
  t.equal(asked.compileTimeoutMs, 10_000, 'the compile default is cut to the timeoutMs quota')
  t.same(jobLimitsOverQuota(asked, quotas), [], 'a compiled job that asks for nothing fits its quota')
  const over = resolveJobSpec(
    { runtime: 'cpp', source: 'int main(){}', limits: { compileTimeoutMs: 20_000 } },
    tenantPolicy,
  ).limits
  t.same(
    jobLimitsOverQuota(over, quotas).map((d) => d.path),
    ['/limits/compileTimeoutMs'],
    'one that asks for more than the quota is still refused for it',
  )
  t.equal(
    resolveJobSpec({ runtime: 'cpp', source: 'x' }, tenantLimitsPolicy(policy, {})).limits.compileTimeoutMs,
    policy.defaultCompileTimeoutMs,
    'no quota: the server default',
  )
})

t.test("a request built without the route's schema (an adapter's) is held to its bounds here too", async (t) => {
  const max = 1024 * 1024
  t.equal(codeOf({ runtime: 'python', source: 'x', stdin: 'a'.repeat(max) }), undefined, 'stdin at its bound')
  t.equal(codeOf({ runtime: 'python', source: 'x', stdin: 'a'.repeat(max + 1) }), 'AIRLOCK_ERR_VALIDATION', 'past it')
  t.equal(codeOf({ runtime: 'python', source: 'x', stdin: '😀'.repeat(max) }), undefined, 'counted in characters')
  t.equal(
    codeOf({ runtime: 'python', source: 'x', stdin: 42 as unknown as string }),
    'AIRLOCK_ERR_VALIDATION',
    'stdin that is not a string',
  )
  const files = Array.from({ length: 101 }, (_, i) => ({ path: `f${i}.py`, content: '' }))
  t.equal(codeOf({ runtime: 'python', files, entrypoint: 'f0.py' }), 'AIRLOCK_ERR_INVALID_FILE', '101 files')
  t.equal(codeOf({ runtime: 'python', files: files.slice(0, 100), entrypoint: 'f0.py' }), undefined, '100 files')
})
