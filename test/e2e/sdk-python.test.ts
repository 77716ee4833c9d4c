import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { build, TENANTS } from '../helper.js'

// The Python SDK's own pytest suite, run against a real Airlock started here, plus one
// whose workers cannot isolate jobs (for UnavailableError).
const root = new URL('../..', import.meta.url).pathname
const python =
  process.env.AIRLOCK_PYTHON ?? (await promisify(execFile)('bash', [`${root}scripts/python-sdk-env.sh`])).stdout.trim()
// A job's default limit made roomy: these tests are of the SDK, and a python job timed out
// at the default 10 s once on this 2-core machine with another test file running beside it.
const h = await build(t, { listen: true, env: { AIRLOCK_DEFAULT_TIMEOUT_MS: '60000' } })
const unsafe = await build(t, { listen: true, env: { AIRLOCK_RUNSC_PATH: '/nonexistent/runsc' } })

t.test('the Python SDK passes its tests against a running Airlock', async (t) => {
  const child = spawn(python, ['-m', 'pytest', 'sdk-python/tests', '-q', '-rs', '-p', 'no:cacheprovider'], {
    cwd: root,
    env: {
      ...process.env,
      PYTHONPATH: `${root}sdk-python`,
      AIRLOCK_URL: h.baseUrl,
      AIRLOCK_API_KEY: TENANTS.alice,
      AIRLOCK_UNAVAILABLE_URL: unsafe.baseUrl,
    },
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 0, `pytest exit code\n${output}`)
  t.match(output, /\b1[0-9] passed\b|\b[1-9] passed\b/)
  t.notMatch(output, /skipped|SKIPPED/, 'nothing skipped')
})
