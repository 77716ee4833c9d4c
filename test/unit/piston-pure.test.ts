import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { isAirlockError } from '../../core/errors.js'
import type { Job } from '../../core/job.js'
import { findRuntime } from '../../core/runtimes.js'
import { pistonKey } from '../../api/adapters/piston/auth.js'
import { pistonValidationMessage } from '../../api/adapters/piston/errors.js'
import { pistonField, toJobRequest } from '../../api/adapters/piston/execute.js'
import { findPistonRuntime, pistonRuntimes } from '../../api/adapters/piston/languages.js'
import { compileStage, runEnd } from '../../api/adapters/piston/result.js'
import type { PistonExecute } from '../../api/adapters/piston/schemas.js'

// The Piston adapter's pure parts: where the key is, which runtime a language and
// version select, how a Piston request becomes a job, and how a job's end reads in Piston.

const key = (authorization?: string) =>
  pistonKey({ headers: authorization === undefined ? {} : { authorization } } as FastifyRequest)
const b64 = (s: string) => Buffer.from(s).toString('base64')

t.test('the key: Bearer, bare, or the password (else the user) of Basic credentials', async (t) => {
  t.equal(key('Bearer k1'), 'k1')
  t.equal(key('k2'), 'k2')
  t.equal(key(`Basic ${b64('airlock:k3:with:colons')}`), 'k3:with:colons')
  t.equal(key(`Basic ${b64('k4:')}`), 'k4')
  t.equal(key(`Basic ${b64('k5')}`), 'k5')
  t.equal(key(`Basic ${b64(':')}`), undefined)
  t.equal(key(), undefined)
  t.equal(key('two words'), undefined, 'not one of the three forms')
})

t.test('a language or alias and a SemVer range select a runtime', async (t) => {
  const workers = [
    {
      id: 'w',
      executor: 'local',
      isolation: { ok: true, technology: 'gvisor', detail: '', reason: null },
      runtimes: { python: '3.11.2', node: '18.20.4' },
      at: 0,
    },
  ]
  const runtimes = pistonRuntimes(workers)
  const pick = (language: string, version: string) => findPistonRuntime(runtimes, language, version)?.runtime
  t.equal(pick('python', '3.11.2'), 'python')
  t.equal(pick('py3', '3.x'), 'python')
  t.equal(pick('python', '^3.10'), 'python')
  t.equal(pick('python', '*'), 'python')
  t.equal(pick('python', '3.12'), undefined)
  t.equal(pick('python', 'not a range'), undefined)
  t.equal(pick('javascript', '18'), 'node')
  t.equal(pick('node', '18.20.4'), 'node', 'our runtime name is an alias')
  t.equal(pick('c++', '12.x'), 'cpp', "no worker reports cpp: the catalog's line, 12, read as 12.0.0")
  t.equal(pick('c++', '12'), 'cpp', 'and the listed version itself')
  t.equal(pick('cobol', '*'), undefined)
})

const base = (over: Partial<PistonExecute> = {}): PistonExecute => ({
  language: 'c',
  version: '*',
  files: [{ content: 'int main(){}' }],
  ...over,
})

t.test('a Piston request as a job request', async (t) => {
  const c = findRuntime('c')!
  t.same(
    toJobRequest(base(), c),
    { runtime: 'c', files: [{ path: 'main.c', content: 'int main(){}' }], entrypoint: 'main.c', args: [], stdin: '\n' },
    'unnamed: the usual name; stdin gets its newline',
  )
  const files = toJobRequest(
    base({
      files: [
        { content: 'AAE=', encoding: 'base64' },
        { name: 'prog', content: 'int main(){}' },
        { content: '00ff', encoding: 'hex' },
        { name: 'x.h', content: '' },
      ],
      stdin: 'a\n',
    }),
    c,
  )
  t.same(files.files, [
    { path: 'file0.code', content: 'AAE=', encoding: 'base64' },
    { path: 'prog.c', content: 'int main(){}' },
    { path: 'file2.code', content: 'AP8=', encoding: 'base64' },
    { path: 'x.h', content: '' },
  ])
  t.equal(files.entrypoint, 'prog.c', 'the first UTF-8 file is run, named with the extension it needs')
  t.equal(files.stdin, 'a\n')
  t.same(
    toJobRequest(
      base({
        run_timeout: 5000,
        run_cpu_time: 2000.5,
        compile_timeout: 9000,
        run_memory_limit: 100 * 1024 * 1024 + 1,
        compile_memory_limit: 1,
      }),
      c,
    ).limits,
    { timeoutMs: 2001, compileTimeoutMs: 9000, memoryMb: 101 },
  )
  t.equal(
    toJobRequest(base({ run_timeout: 0, run_memory_limit: -1, compile_timeout: null }), c).limits,
    undefined,
    "0, -1 for memory and null: the server's defaults",
  )
  const refused = (body: PistonExecute) => {
    try {
      toJobRequest(body, c)
      return undefined
    } catch (err) {
      return isAirlockError(err) ? err.message : String(err)
    }
  }
  t.equal(refused(base({ run_timeout: -1 })), 'run_timeout must be non-negative')
  t.equal(
    refused(base({ files: [{ content: 'x' }, { content: 'abc', encoding: 'hex' }] })),
    'files[1].content is not hex (pairs of 0-9, a-f)',
  )
  t.equal(refused(base({ args: ['x'.repeat(5000)] })), 'args[0] must not have more than 4096 characters')
  t.equal(pistonField('/files/2/path'), 'files[2].name')
  t.equal(pistonField('/limits/compileTimeoutMs'), 'compile_timeout (as compileTimeoutMs)')
})

t.test("a body's first problem in Piston's order and words", async (t) => {
  t.equal(
    pistonValidationMessage([
      { instancePath: '', keyword: 'required', params: { requiredProperties: ['files'] } },
      { instancePath: '/language', keyword: 'type' },
    ]),
    'language is required as a string',
  )
  t.equal(
    pistonValidationMessage([
      { instancePath: '/files/1', keyword: 'required', params: { requiredProperties: ['content'] } },
    ]),
    'files[1].content is required as a string',
  )
  t.equal(
    pistonValidationMessage([{ instancePath: '/compile_cpu_time', keyword: 'type' }]),
    'If specified, compile_cpu_time must be a number',
  )
  t.equal(
    pistonValidationMessage([
      { instancePath: '/files', keyword: 'minItems', message: 'must not have fewer than 1 items' },
    ]),
    'files must not have fewer than 1 items',
  )
})

const job = (over: Partial<Job>): Omit<Job, 'stdout' | 'stderr'> =>
  ({
    status: 'succeeded',
    exitCode: 0,
    signal: null,
    reason: null,
    truncated: false,
    timings: { runMs: 12 },
    compile: null,
    ...over,
  }) as Omit<Job, 'stdout' | 'stderr'>

t.test("a job's end as Piston's stage", async (t) => {
  t.match(runEnd(job({})), {
    code: 0,
    signal: null,
    status: null,
    message: null,
    wall_time: 12,
    cpu_time: null,
    memory: null,
  })
  t.match(runEnd(job({ truncated: true })), { code: 0, status: null, message: /cut/ })
  t.match(runEnd(job({ status: 'failed', exitCode: 2 })), {
    code: 2,
    status: 'RE',
    message: 'Exited with error status 2',
  })
  t.match(runEnd(job({ status: 'failed', exitCode: null, signal: 'SIGSEGV' })), {
    code: null,
    signal: 'SIGSEGV',
    status: 'SG',
  })
  t.match(runEnd(job({ status: 'timeout', exitCode: null, signal: 'SIGKILL' })), {
    code: null,
    signal: 'SIGKILL',
    status: 'TO',
  })
  t.match(runEnd(job({ status: 'oom', exitCode: null, reason: 'out of memory' })), {
    signal: 'SIGKILL',
    status: 'SG',
    message: 'out of memory',
  })
  t.match(runEnd(job({ status: 'error', exitCode: null, reason: 'the sandbox failed' })), {
    status: 'XX',
    message: 'the sandbox failed',
  })
  const compile = {
    status: 'timeout' as const,
    exitCode: null,
    signal: 'SIGKILL',
    timeMs: 900,
    stdout: 'a',
    stderr: 'b',
    truncated: false,
  }
  t.match(compileStage(job({ status: 'timeout', compile })), {
    stdout: 'a',
    stderr: 'b',
    output: 'ab',
    status: 'TO',
    signal: 'SIGKILL',
    wall_time: 900,
  })
  t.match(
    compileStage(job({ status: 'cancelled', exitCode: null, reason: 'cancelled' })),
    { stdout: '', status: 'XX', wall_time: null },
    'no compile reported',
  )
})
