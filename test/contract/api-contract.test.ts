import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { build, TENANTS } from '../helper.js'

// The API as tools nobody here wrote see it: Redocly lints the OpenAPI document,
// Schemathesis fuzzes a running Airlock from it with every check, and clients generated
// from it (openapi-python-client; openapi-typescript with openapi-fetch) make real calls.
const root = new URL('../..', import.meta.url).pathname
const toolsPython =
  process.env.AIRLOCK_API_TOOLS_PYTHON ??
  (await promisify(execFile)('bash', [`${root}scripts/api-tools-env.sh`])).stdout.trim()
const ADMIN_KEY = 'admin-key-for-the-contract-0001'
// Fixed so a run can be repeated; AIRLOCK_SCHEMATHESIS_SEED tries others.
const SEED = process.env.AIRLOCK_SCHEMATHESIS_SEED ?? '20261202'

// No worker: submitted jobs stay queued, so the fuzzer's thousands of requests run no
// sandbox; ?wait=true answers within a second.
const api = await build(t, {
  worker: false,
  listen: true,
  env: { AIRLOCK_ADMIN_KEY: ADMIN_KEY, AIRLOCK_MAX_WAIT_MS: '1000' },
})
const doc = (await api.app.inject({ method: 'GET', url: '/docs/json' })).json<{
  openapi: string
  paths: Record<string, Record<string, unknown>>
}>()
const operations = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0)
const work = await mkdtemp(join(tmpdir(), 'contract-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const docFile = join(work, 'openapi.json')
await writeFile(docFile, JSON.stringify(doc))

interface Run {
  code: number | null
  stdout: string
  /** stdout and stderr as they came. */
  output: string
}

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let [stdout, output] = ['', '']
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
    output += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, output })))
}

t.test('Redocly finds no error in the OpenAPI document', async (t) => {
  const lint = await run(`${root}node_modules/.bin/redocly`, ['lint', docFile, '--format=json'])
  const report = JSON.parse(lint.stdout) as { totals: { errors: number; warnings: number } }
  t.equal(report.totals.errors, 0, `redocly errors\n${lint.output.slice(0, 4000)}`)
  t.equal(lint.code, 0)
  t.comment(`redocly: ${report.totals.errors} errors, ${report.totals.warnings} warnings`)
})

t.test('Schemathesis, with every check, finds no failure on any operation', async (t) => {
  const schemathesis = join(dirname(toolsPython), 'schemathesis')
  const fuzz = await run(
    schemathesis,
    [
      '--config-file',
      `${root}test/contract/schemathesis.toml`,
      'run',
      `${api.baseUrl}/docs/json`,
      '--url',
      api.baseUrl,
      '--checks',
      'all',
      '--max-examples',
      '50',
      '--seed',
      SEED,
      '--no-color',
    ],
    // Its cache (.schemathesis/) goes in the work directory, not the checkout.
    { cwd: work, env: { AIRLOCK_TENANT_KEY: TENANTS.alice, AIRLOCK_ADMIN_KEY: ADMIN_KEY } },
  )
  const summary = fuzz.output.slice(fuzz.output.lastIndexOf('SUMMARY'))
  t.equal(fuzz.code, 0, `schemathesis exit code\n${fuzz.output.slice(-12000)}`)
  t.match(
    summary,
    new RegExp(`Tested: ${operations}\\b`),
    `every one of the document's ${operations} operations was tested`,
  )
  t.notMatch(summary, /Failures:|Errors:/, 'no failure and no error')
  t.comment(
    summary
      .split('\n')
      .filter((l) => /Tested|generated|passed|failure/.test(l))
      .join(' | '),
  )
})

// One worker from here on: the generated clients run a real job.
const live = await build(t, { listen: true })

t.test('a Python client generated from the document runs a job', async (t) => {
  const out = join(work, 'python')
  const gen = await run(join(dirname(toolsPython), 'openapi-python-client'), [
    'generate',
    '--path',
    docFile,
    '--meta',
    'none',
    '--output-path',
    join(out, 'airlock_client'),
  ])
  t.equal(gen.code, 0, `openapi-python-client\n${gen.output}`)
  const program = `
import json, sys
from airlock_client import AuthenticatedClient
from airlock_client.api.runtimes import list_runtimes
from airlock_client.api.jobs import submit_job, get_job
from airlock_client.models import JobRequest, RuntimeName, Job
client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
runtimes = list_runtimes.sync(client=client)
job = submit_job.sync(client=client, body=JobRequest(runtime=RuntimeName.PYTHON, source="print(6 * 7)"), wait=True)
assert isinstance(job, Job), job
again = get_job.sync(client=client, id=job.id)
print(json.dumps({"runtimes": [r.name for r in runtimes.runtimes], "status": str(job.status.value), "stdout": job.stdout, "same": again.id == job.id}))
`
  await writeFile(join(out, 'call.py'), program)
  const call = await run(toolsPython, [join(out, 'call.py'), live.baseUrl, TENANTS.alice], {
    cwd: out,
    env: { PYTHONPATH: out },
  })
  t.equal(call.code, 0, call.output)
  const result = JSON.parse(call.output.trim().split('\n').at(-1)!) as {
    runtimes: string[]
    status: string
    stdout: string
    same: boolean
  }
  t.ok(result.runtimes.includes('python'))
  t.same(
    { status: result.status, stdout: result.stdout, same: result.same },
    { status: 'succeeded', stdout: '42\n', same: true },
  )
})

t.test('a TypeScript client generated from the document compiles and runs a job', async (t) => {
  // Inside the checkout, so the program finds openapi-fetch in node_modules.
  const out = join(root, 'test/contract/.generated')
  await mkdir(out, { recursive: true })
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const gen = await run(`${root}node_modules/.bin/openapi-typescript`, [docFile, '-o', join(out, 'airlock.ts')])
  t.equal(gen.code, 0, gen.output)
  await writeFile(
    join(out, 'call.ts'),
    `import createClient from 'openapi-fetch'
import type { paths } from './airlock.js'

const client = createClient<paths>({ baseUrl: process.argv[2], headers: { authorization: \`Bearer \${process.argv[3]}\` } })
const runtimes = await client.GET('/v1/runtimes')
const submitted = await client.POST('/v1/jobs', { params: { query: { wait: true } }, body: { runtime: 'node', source: 'console.log(6 * 7)' } })
if (submitted.response.status !== 200 || !submitted.data || !('stdout' in submitted.data)) throw new Error(\`not finished: \${submitted.response.status}\`)
const job = await client.GET('/v1/jobs/{id}', { params: { path: { id: submitted.data.id } } })
console.log(JSON.stringify({ runtimes: runtimes.data?.runtimes.map((r) => r.name), status: job.data?.status, stdout: job.data?.stdout }))
`,
  )
  const tsc = await run(`${root}node_modules/.bin/tsc`, [
    '--strict',
    '--module',
    'nodenext',
    '--target',
    'es2022',
    '--skipLibCheck',
    '--outDir',
    out,
    join(out, 'call.ts'),
  ])
  t.equal(tsc.code, 0, `the generated types and the program type-check\n${tsc.output}`)
  const call = await run(process.execPath, [join(out, 'call.js'), live.baseUrl, TENANTS.alice])
  t.equal(call.code, 0, call.output)
  const result = JSON.parse(call.output.trim().split('\n').at(-1)!) as {
    runtimes: string[]
    status: string
    stdout: string
  }
  t.ok(result.runtimes.includes('node'))
  t.same({ status: result.status, stdout: result.stdout }, { status: 'succeeded', stdout: '42\n' })
})
