import t from 'tap'
import { loadConfig } from '../../core/config.js'
import { AirlockError } from '../../core/errors.js'
import { filePathProblem, resolveJobSpec, type JobRequest } from '../../core/job-spec.js'

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
  t.same(spec.limits, { timeoutMs: policy.defaultTimeoutMs, memoryMb: policy.defaultMemoryMb, cpus: policy.defaultCpus, pids: policy.defaultPids, outputBytes: policy.defaultOutputBytes })
  t.equal(spec.stdin, '')
  t.same(spec.args, [])
})

t.test('requested limits replace the defaults when within the maximums', async (t) => {
  const spec = resolveJobSpec({ runtime: 'node', source: '1', limits: { timeoutMs: 2000, memoryMb: 128, cpus: 0.5, pids: 8, outputBytes: 100 } }, policy)
  t.same(spec.limits, { timeoutMs: 2000, memoryMb: 128, cpus: 0.5, pids: 8, outputBytes: 100 })
})

t.test('each limit above its maximum is named in the error', async (t) => {
  try {
    resolveJobSpec({ runtime: 'bash', source: 'true', limits: { timeoutMs: policy.maxTimeoutMs + 1, memoryMb: policy.maxMemoryMb + 1 } }, policy)
    t.fail('expected an error')
  } catch (err) {
    const e = err as AirlockError
    t.equal(e.code, 'AIRLOCK_ERR_LIMIT_EXCEEDED')
    t.equal(e.statusCode, 400)
    t.same(e.details?.map((d) => d.path), ['/limits/timeoutMs', '/limits/memoryMb'])
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
  for (const path of ['/etc/passwd', '../x', 'a/../../x', 'a//b', './a', 'a\\b', 'a\0b', 'a\nb', 'x/'.repeat(17) + 'y']) {
    t.ok(filePathProblem(path), `refuses ${JSON.stringify(path)}`)
    t.equal(codeOf({ runtime: 'python', files: [{ path, content: '' }], entrypoint: path }), 'AIRLOCK_ERR_INVALID_FILE', `code for ${JSON.stringify(path)}`)
  }
  for (const path of ['main.py', 'pkg/mod.py', 'a.b/c-d_e.txt', '..hidden']) {
    t.equal(filePathProblem(path), undefined, `accepts ${JSON.stringify(path)}`)
  }
})

t.test('duplicate files and a file that is also a directory are refused', async (t) => {
  t.equal(codeOf({ runtime: 'python', files: [{ path: 'a.py', content: '' }, { path: 'a.py', content: '' }] }), 'AIRLOCK_ERR_INVALID_FILE')
  t.equal(codeOf({ runtime: 'python', files: [{ path: 'a', content: '' }, { path: 'a/b.py', content: '' }], entrypoint: 'a/b.py' }), 'AIRLOCK_ERR_INVALID_FILE')
})

t.test('the entrypoint defaults sensibly and must be one of the files', async (t) => {
  t.equal(resolveJobSpec({ runtime: 'python', files: [{ path: 'app.py', content: '' }] }, policy).entrypoint, 'app.py')
  t.equal(resolveJobSpec({ runtime: 'python', files: [{ path: 'lib.py', content: '' }, { path: 'main.py', content: '' }] }, policy).entrypoint, 'main.py')
  t.equal(codeOf({ runtime: 'python', files: [{ path: 'a.py', content: '' }, { path: 'b.py', content: '' }] }), 'AIRLOCK_ERR_VALIDATION')
  t.equal(codeOf({ runtime: 'python', files: [{ path: 'a.py', content: '' }], entrypoint: 'b.py' }), 'AIRLOCK_ERR_VALIDATION')
})

t.test('env may not override sandbox variables or carry NUL bytes; args may not carry NUL bytes', async (t) => {
  t.equal(codeOf({ runtime: 'bash', source: 'env', env: { PATH: '/tmp' } }), 'AIRLOCK_ERR_VALIDATION')
  t.equal(codeOf({ runtime: 'bash', source: 'env', env: { A: 'x\0y' } }), 'AIRLOCK_ERR_VALIDATION')
  t.equal(codeOf({ runtime: 'bash', source: 'env', args: ['ok', 'x\0'] }), 'AIRLOCK_ERR_VALIDATION')
  t.same(resolveJobSpec({ runtime: 'bash', source: 'env', env: { A: '1' }, args: ['x'] }, policy).env, { A: '1' })
})

t.test('files larger than the total cap are refused', async (t) => {
  const big = 'x'.repeat(600 * 1024)
  t.equal(codeOf({ runtime: 'python', files: [{ path: 'a.py', content: big }, { path: 'b.py', content: big }], entrypoint: 'a.py' }), 'AIRLOCK_ERR_INVALID_FILE')
})
