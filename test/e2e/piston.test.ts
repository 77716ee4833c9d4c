import t from 'tap'
import { request as httpRequest } from 'node:http'
import piston from 'piston-client'
import type { JobList } from '../../core/job.js'
import { build, TENANTS } from '../helper.js'

// The Piston v2 adapter as Piston's clients see it: the published piston-client (npm),
// unchanged, pointed at a real Airlock (real Redis, real gVisor) with the key in its
// server URL, which it sends as Basic credentials; and raw HTTP for what the client
// cannot show (status codes, headers, error shapes).
const h = await build(t, { listen: true })
const port = new URL(h.baseUrl).port
const client = piston({ server: `http://airlock:${TENANTS.alice}@127.0.0.1:${port}/piston` })

interface Stage {
  stdout: string
  stderr: string
  output: string
  code: number | null
  signal: string | null
  message: string | null
  status: string | null
  wall_time: number | null
}
interface Result {
  language: string
  version: string
  run: Stage
  compile?: Stage
}
interface Runtime {
  language: string
  version: string
  aliases: string[]
  runtime?: string
}

/** Piston's own defaults are 3 s and 10 s; a loaded 2-core machine gets more. */
const ROOMY = { runTimeout: 30_000, compileTimeout: 60_000 }

async function raw(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${TENANTS.alice}` },
) {
  return h.app.inject({
    method: method as 'GET',
    url,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  })
}

t.test('the client lists our runtimes under Piston names, at the versions our workers run', async (t) => {
  const runtimes = (await client.runtimes()) as Runtime[]
  const ours = (await h.request('GET', '/v1/runtimes')).json<{ runtimes: { name: string; version: string | null }[] }>()
    .runtimes
  const version = (name: string) => ours.find((r) => r.name === name)?.version
  const byLanguage = (language: string) => runtimes.find((r) => r.language === language)
  t.match(byLanguage('python'), { version: version('python'), aliases: ['py', 'py3', 'python3'] })
  t.notOk('runtime' in byLanguage('python')!, 'runtime only where it differs from the language, as Piston does')
  t.match(byLanguage('javascript'), { version: version('node'), runtime: 'node' })
  t.ok(byLanguage('javascript')!.aliases.includes('js'))
  t.match(byLanguage('c++'), { version: version('cpp'), runtime: 'cpp', aliases: ['cpp', 'g++'] })
  t.match(byLanguage('rust'), { version: version('rust'), aliases: ['rs'] })
  t.match(byLanguage('go'), { aliases: ['golang'] })
  t.match(byLanguage('bash'), { aliases: ['sh'] })
  t.match(version('python'), /^3\.11\.\d+$/, 'an exact version, from the image')
})

t.test('python through the client: stdin, args, both streams and their interleaving', async (t) => {
  // Pauses between the writes, so each is its own log event whatever the worker batches.
  const code = [
    'import sys, time',
    'name = input()',
    'print("hello", name, flush=True)',
    'time.sleep(0.3)',
    'print("to stderr", file=sys.stderr, flush=True)',
    'time.sleep(0.3)',
    'print(sys.argv[1:])',
  ].join('\n')
  const r = (await client.execute('python', code, { stdin: 'world', args: ['a b', 'c'], ...ROOMY })) as Result
  t.equal(r.language, 'python')
  t.match(r.version, /^3\.11\./)
  t.equal(r.compile, undefined, 'no compile stage for an interpreter')
  t.match(r.run, {
    stdout: "hello world\n['a b', 'c']\n",
    stderr: 'to stderr\n',
    code: 0,
    signal: null,
    status: null,
    message: null,
  })
  t.equal(
    r.run.output,
    "hello world\nto stderr\n['a b', 'c']\n",
    'output is both streams in the order they were written',
  )
})

t.test('javascript (node) through the client, by its Piston name and by an alias', async (t) => {
  const code = 'console.log(process.argv.slice(2).join(","))'
  const r = (await client.execute('javascript', code, { args: ['x', 'y'], ...ROOMY })) as Result
  t.match(r, { language: 'javascript', run: { stdout: 'x,y\n', code: 0 } })
  // The client looks the version up by language name only; an alias needs one given.
  const viaAlias = (await client.execute({
    language: 'js',
    version: '18.x',
    files: [{ content: code }],
    args: [],
    ...ROOMY,
  })) as Result
  t.match(viaAlias, { language: 'javascript', run: { stdout: '\n', code: 0 } })
})

t.test('compiled languages through the client: a compile stage, then the run', async (t) => {
  const cpp = (await client.execute(
    'c++',
    '#include <iostream>\nint main(){int n; std::cin >> n; std::cout << n * 2 << std::endl;}',
    { stdin: '21', args: [], ...ROOMY },
  )) as Result
  t.match(cpp, { language: 'c++', compile: { code: 0, status: null }, run: { stdout: '42\n', code: 0 } })
  // Unnamed, the Java file is Main.java, as javac needs for a public class Main.
  const java = (await client.execute(
    'java',
    'public class Main { public static void main(String[] a) { System.out.println("java " + a.length); } }',
    { args: ['1'], ...ROOMY },
  )) as Result
  t.match(java, { language: 'java', compile: { code: 0 }, run: { stdout: 'java 1\n', code: 0 } })
  const rust = (await client.execute(
    'rust',
    'fn main() { println!("{}", std::env::args().skip(1).collect::<Vec<_>>().join("+")); }',
    { args: ['1', '2'], ...ROOMY },
  )) as Result
  t.match(rust, { language: 'rust', compile: { code: 0 }, run: { stdout: '1+2\n', code: 0 } })
})

t.test('a compile error: compile.code is not 0 and the run is the compile, as Piston answers', async (t) => {
  const r = (await client.execute('c', 'int main() { return undefined_name; }', ROOMY)) as Result
  t.not(r.compile!.code, 0)
  t.equal(r.compile!.status, 'RE')
  t.match(r.compile!.stderr, /undefined_name/)
  t.match(r.compile!.output, /undefined_name/)
  t.same(r.run, r.compile, 'nothing ran')
})

t.test('a run error, a timeout and running out of memory, in Piston terms', async (t) => {
  const failed = (await client.execute('python', 'import sys\nprint("partial")\nsys.exit(3)', ROOMY)) as Result
  t.match(failed.run, {
    stdout: 'partial\n',
    code: 3,
    signal: null,
    status: 'RE',
    message: 'Exited with error status 3',
  })
  const slow = (await client.execute('python', 'while True: pass', { runTimeout: 500 })) as Result
  t.match(slow.run, { code: null, signal: 'SIGKILL', status: 'TO' })
  const hungry = (await client.execute('python', 'x = bytearray(512 * 1024 * 1024)\nprint(len(x))', {
    ...ROOMY,
    runMemoryLimit: 64 * 1024 * 1024,
  })) as Result
  t.match(hungry.run, { code: null, signal: 'SIGKILL', status: 'SG', stdout: '' })
})

t.test('files: the first UTF-8 file is run; base64 and hex files arrive byte for byte', async (t) => {
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const r = (await client.execute({
    language: 'python',
    files: [
      { name: 'data.bin', content: bytes.toString('base64'), encoding: 'base64' },
      { name: 'prog.py', content: 'import lib\nprint(lib.check("data.bin"), lib.check("more.bin"))' },
      {
        name: 'lib.py',
        content: 'def check(p):\n    b = open(p, "rb").read()\n    return len(b), b == bytes(range(256))',
      },
      { name: 'more.bin', content: bytes.toString('hex'), encoding: 'hex' },
    ],
    args: [],
    ...ROOMY,
  })) as Result
  t.match(r.run, { stdout: '(256, True) (256, True)\n', code: 0 })
})

t.test('a Piston request refused gets a 4xx in Piston shape, { message } with our code beside it', async (t) => {
  const execute = (body: unknown) => raw('POST', '/piston/api/v2/execute', body)
  const file = [{ content: 'print(1)' }]
  const cases: [string, unknown, number, string | RegExp, string][] = [
    [
      'unknown language',
      { language: 'cobol', version: '*', files: file },
      400,
      'cobol-* runtime is unknown',
      'AIRLOCK_ERR_UNKNOWN_RUNTIME',
    ],
    [
      'no runtime of that version',
      { language: 'python', version: '3.12', files: file },
      400,
      'python-3.12 runtime is unknown',
      'AIRLOCK_ERR_UNKNOWN_RUNTIME',
    ],
    [
      'a version that is no range',
      { language: 'python', version: 'latest', files: file },
      400,
      'python-latest runtime is unknown',
      'AIRLOCK_ERR_UNKNOWN_RUNTIME',
    ],
    ['no language', { version: '*', files: file }, 400, 'language is required as a string', 'AIRLOCK_ERR_VALIDATION'],
    [
      'no version',
      { language: 'python', files: file },
      400,
      'version is required as a string',
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'files not an array',
      { language: 'python', version: '*', files: 'print(1)' },
      400,
      'files is required as an array',
      'AIRLOCK_ERR_VALIDATION',
    ],
    ['no files', { language: 'python', version: '*', files: [] }, 400, /files/, 'AIRLOCK_ERR_VALIDATION'],
    // A version is parsed as a SemVer range, and semver keeps the ranges it parsed.
    [
      'a version longer than any listed one',
      { language: 'python', version: `${'1 '.repeat(40)}1`, files: file },
      400,
      /version/,
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'a language longer than any listed one',
      { language: 'p'.repeat(65), version: '*', files: file },
      400,
      /language/,
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'a file without content',
      { language: 'python', version: '*', files: [{ name: 'a.py' }] },
      400,
      'files[0].content is required as a string',
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'an unknown encoding',
      { language: 'python', version: '*', files: [{ content: 'x', encoding: 'rot13' }] },
      400,
      /files\[0\]\.encoding/,
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'bad hex',
      { language: 'python', version: '*', files: [{ content: 'print(1)' }, { content: 'zz', encoding: 'hex' }] },
      400,
      'files[1].content is not hex (pairs of 0-9, a-f)',
      'AIRLOCK_ERR_INVALID_FILE',
    ],
    [
      'bad base64',
      {
        language: 'python',
        version: '*',
        files: [{ content: 'print(1)' }, { name: 'd', content: '!!', encoding: 'base64' }],
      },
      400,
      /not base64/,
      'AIRLOCK_ERR_INVALID_FILE',
    ],
    [
      'a file escaping the workspace',
      { language: 'python', version: '*', files: [{ name: '../x.py', content: 'print(1)' }] },
      400,
      /\.\./,
      'AIRLOCK_ERR_INVALID_FILE',
    ],
    [
      'a limit that is no number',
      { language: 'python', version: '*', files: file, run_timeout: '5s' },
      400,
      'If specified, run_timeout must be a number',
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'a negative limit',
      { language: 'python', version: '*', files: file, run_timeout: -5 },
      400,
      'run_timeout must be non-negative',
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'a timeout above the maximum',
      { language: 'python', version: '*', files: file, run_timeout: 10_000_000 },
      400,
      /^run_timeout \(as timeoutMs\): 10000000 is above this server's maximum/,
      'AIRLOCK_ERR_LIMIT_EXCEEDED',
    ],
    [
      'a timeout below the least',
      { language: 'python', version: '*', files: file, run_timeout: 5 },
      400,
      'run_timeout (as timeoutMs): must be >= 100',
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'memory below the least',
      { language: 'python', version: '*', files: file, run_memory_limit: 1000 },
      400,
      'run_memory_limit (as memoryMb): must be >= 16',
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'args that are not strings',
      { language: 'python', version: '*', files: file, args: [1] },
      400,
      /^args\[0\] /,
      'AIRLOCK_ERR_VALIDATION',
    ],
  ]
  for (const [what, body, status, message, code] of cases) {
    const res = await execute(body)
    t.equal(res.statusCode, status, `${what}: ${res.body}`)
    t.match(res.json(), { message, code }, what)
    t.same(Object.keys(res.json()).sort(), ['code', 'message'], `${what}: only Piston's message and our code`)
  }
  const notJson = await h.app.inject({
    method: 'POST',
    url: '/piston/api/v2/execute',
    headers: { authorization: `Bearer ${TENANTS.alice}`, 'content-type': 'text/plain' },
    payload: 'print(1)',
  })
  t.equal(notJson.statusCode, 400, 'a text/plain body is read as JSON, and this is not JSON')
  t.match(notJson.json(), { code: 'AIRLOCK_ERR_MALFORMED_JSON', message: String })
  const empty = await h.app.inject({
    method: 'POST',
    url: '/piston/api/v2/execute',
    headers: { authorization: `Bearer ${TENANTS.alice}`, 'content-type': 'text/plain' },
  })
  t.equal(empty.statusCode, 400, 'an empty body where one is read')
  t.match(empty.json(), { code: 'AIRLOCK_ERR_MALFORMED_JSON', message: /body is empty/ })
  t.notMatch(empty.json().message, /application\/json/, 'not said to be of a type it was not sent as')
  const jobs = (await h.request('GET', '/v1/jobs?limit=100')).json<JobList>()
  t.notOk(
    jobs.items.some((j) => j.status === 'queued'),
    'no refused request left a job behind',
  )
})

t.test('every Piston route needs a key; Bearer, a bare key and Basic credentials are each one', async (t) => {
  const noKey = await raw('GET', '/piston/api/v2/runtimes', undefined, {})
  t.equal(noKey.statusCode, 401)
  t.match(noKey.json(), { code: 'AIRLOCK_ERR_UNAUTHORIZED', message: /missing API key/ })
  t.equal(noKey.headers.connection, 'close')
  // Piston's execute takes text/plain bodies and Basic credentials, which a cross-site form
  // could send: safe only while no browser holds credentials for this origin, and a browser
  // stores Basic credentials only after a challenge (review 21).
  t.equal(noKey.headers['www-authenticate'], undefined, 'no Basic challenge, so no browser keeps credentials')
  const noKeyExecute = await raw(
    'POST',
    '/piston/api/v2/execute',
    { language: 'python', version: '*', files: [{ content: 'print(1)' }] },
    {},
  )
  t.equal(noKeyExecute.statusCode, 401, 'execute too, before its body is looked at')
  t.equal(
    (await raw('GET', '/piston/api/v2/runtimes', undefined, { authorization: 'Bearer not-a-key' })).statusCode,
    401,
  )
  t.equal((await raw('GET', '/piston/api/v2/nope', undefined, {})).statusCode, 401, 'a path no route has, too')
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`
  for (const authorization of [
    `Bearer ${TENANTS.alice}`,
    TENANTS.alice,
    basic('airlock', TENANTS.alice),
    basic(TENANTS.alice, ''),
    `Basic ${Buffer.from(TENANTS.alice).toString('base64')}`,
  ]) {
    t.equal(
      (await raw('GET', '/piston/api/v2/runtimes', undefined, { authorization })).statusCode,
      200,
      authorization.split(' ')[0]!,
    )
  }
  t.equal(
    (await raw('GET', '/piston/api/v2/runtimes', undefined, { authorization: basic('airlock', 'wrong') })).statusCode,
    401,
  )
  const unauthClient = piston({ server: `http://127.0.0.1:${port}/piston` })
  t.match(
    await unauthClient.runtimes(),
    { code: 'AIRLOCK_ERR_UNAUTHORIZED' },
    'the client without a key gets the 401 body',
  )
})

t.test(
  'packages: all of ours are installed; none is installed or removed through the API; other paths are 404',
  async (t) => {
    const packages = await raw('GET', '/piston/api/v2/packages')
    t.equal(packages.statusCode, 200)
    t.match(packages.json(), [{ language: 'python', language_version: /^3\.11/, installed: true }])
    for (const method of ['POST', 'DELETE']) {
      const res = await raw(method, '/piston/api/v2/packages', { language: 'python', version: '3.12' })
      t.equal(res.statusCode, 403, method)
      t.match(res.json(), { code: 'AIRLOCK_ERR_FORBIDDEN', message: /operator's sandbox images/ })
    }
    const connect = await raw('GET', '/piston/api/v2/connect')
    t.equal(connect.statusCode, 404, 'no interactive WebSocket endpoint')
    t.match(connect.json(), { code: 'AIRLOCK_ERR_ROUTE_NOT_FOUND', message: /no route GET \/piston\/api\/v2\/connect/ })
    const wrongMethod = await raw('GET', '/piston/api/v2/execute')
    t.equal(wrongMethod.statusCode, 405)
    t.equal(wrongMethod.headers.allow, 'POST')
    const doc = (await h.app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, unknown> }>()
    t.notOk(
      Object.keys(doc.paths).some((p) => p.startsWith('/piston')),
      "the Piston routes are not in Airlock's OpenAPI document",
    )
  },
)

t.test('a client that hangs up cancels its job', async (t) => {
  const body = JSON.stringify({
    language: 'python',
    version: '*',
    files: [{ content: 'import time\nprint("up", flush=True)\ntime.sleep(60)' }],
    run_timeout: 90_000,
  })
  const req = httpRequest(`${h.baseUrl}/piston/api/v2/execute`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TENANTS.alice}`, 'content-type': 'application/json' },
  })
  req.on('error', () => undefined)
  req.end(body)
  const running = async () => (await h.request('GET', '/v1/jobs?status=running')).json<JobList>().items
  const deadline = Date.now() + 60_000
  while ((await running()).length === 0) {
    if (Date.now() > deadline) throw new Error('the job never started')
    await new Promise((r) => setTimeout(r, 100))
  }
  const [job] = await running()
  req.destroy()
  const ended = await h.poll(job!.id, (j) => j.status !== 'running' && j.status !== 'queued', 30_000)
  t.equal(ended.status, 'cancelled')
})

t.test('a wait that fails cancels its job: a 503 that says retry never leaves it running', async (t) => {
  // Found by review 23: a fault while waiting (Redis gone a moment) answered 503 "retry"
  // and left the job to run, so a retry ran the program twice; a cancel that failed too
  // was told "it was cancelled: retry".
  const { jobService } = h.app.services
  const waitForEnd = jobService.waitForEnd.bind(jobService)
  const cancel = jobService.cancel.bind(jobService)
  t.teardown(() => {
    jobService.waitForEnd = waitForEnd
    jobService.cancel = cancel
  })
  const unreachable = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })
  const submitted: string[] = []
  jobService.waitForEnd = async (id) => {
    submitted.push(id)
    throw unreachable()
  }
  const body = {
    language: 'python',
    version: '*',
    files: [{ content: 'import time\ntime.sleep(60)' }],
    run_timeout: 90_000,
  }
  const failed = await raw('POST', '/piston/api/v2/execute', body)
  t.equal(failed.statusCode, 503)
  t.match(failed.json(), { code: 'AIRLOCK_ERR_WAIT_EXPIRED', message: /it was cancelled: retry/ })
  const first = await h.poll(submitted[0]!, (j) => j.status === 'cancelled', 30_000)
  t.equal(first.status, 'cancelled', 'the job that was answered "retry" does not run on')

  jobService.cancel = async () => {
    throw unreachable()
  }
  const unsure = await raw('POST', '/piston/api/v2/execute', body)
  t.equal(unsure.statusCode, 500, 'a job that may still run is not answered "retry"')
  t.match(unsure.json(), {
    code: 'AIRLOCK_ERR_INTERNAL',
    message: /may still run: sending it again would run it again/,
  })
  jobService.cancel = cancel
  await cancel(submitted[1]!, 'alice')
})
