import t from 'tap'
import { spawn } from 'node:child_process'
import { build, TENANTS } from '../helper.js'
import { splitCommandLine } from '../../api/adapters/judge0/submission-request.js'
import { MAX_ARGS } from '../../core/job-spec.js'

// The Judge0 CE adapter (/judge0), driven by the official Judge0 Python client, unchanged,
// against a real Airlock on real Redis and gVisor; then what that client does not send
// (wait=true, plain text, refusals, other tenants' tokens) over plain HTTP.
const python = process.env.AIRLOCK_JUDGE0_PYTHON
if (!python) {
  throw new Error(
    'AIRLOCK_JUDGE0_PYTHON is not set: it names the python of the Judge0 client\'s environment; run `export AIRLOCK_JUDGE0_PYTHON="$(bash scripts/judge0-client-env.sh)"` (scripts/test.sh does)',
  )
}
const root = new URL('../..', import.meta.url).pathname
const h = await build(t, { listen: true })

interface Judge0Json {
  [key: string]: unknown
}

async function judge0(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: unknown,
  key: string | null = TENANTS.alice,
) {
  const res = await h.app.inject({
    method,
    url: `/judge0${url}`,
    headers: {
      ...(key ? { 'x-auth-token': key } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  })
  return { status: res.statusCode, json: res.json<Judge0Json>() }
}

interface Dumped {
  token: string
  status: number
  stdout: string | null
  stderr: string | null
  compile_output: string | null
  message: string | null
  exit_code: number | null
  exit_signal: number | null
  time: number | null
  memory: number | null
  finished: boolean
}

t.test(
  'the official Judge0 Python client runs submissions through Airlock: languages, verdicts, a batch, base64',
  async (t) => {
    const child = spawn(python, [`${root}test/e2e/judge0-client.py`], {
      env: {
        ...process.env,
        PYTHONDONTWRITEBYTECODE: '1',
        JUDGE0_URL: `${h.baseUrl}/judge0`,
        JUDGE0_KEY: TENANTS.alice,
      },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    t.equal(code, 0, `the client's script ran\n${stderr}`)
    if (code !== 0) return
    const out = JSON.parse(stdout) as {
      version: string
      languages: Record<string, string>
      config: Record<string, unknown>
      supports_cpp_alias: boolean
      single: Dumped
      batch: Dumped[]
    }

    t.equal(out.version, '1.13.1', 'it reads the API version it picks language ids by')
    t.match(
      out.languages,
      {
        50: /^C \(GCC 12\./,
        54: /^C\+\+ \(GCC 12\./,
        62: /^Java \(OpenJDK 17\./,
        71: /^Python \(3\.11\./,
        73: /^Rust \(1\.63\./,
      },
      'our real versions in Judge0 ids',
    )
    t.ok(out.supports_cpp_alias, 'its C++ alias (id 52) is offered')
    t.same(out.config, { max_submission_batch_size: 20, enable_network: false })

    t.match(
      out.single,
      { status: 3, stdout: 'SHOUT h\u00e9llo \u2713\n', stderr: null, exit_code: 0, memory: null, finished: true },
      'stdin in, UTF-8 out through base64',
    )
    t.match(out.single.token, /^job_[0-9a-f]{32}$/, 'the token is the job id')
    t.ok(typeof out.single.time === 'number' && out.single.time >= 0, 'time in seconds')

    const [c, java, rust, cpp, wrong, right, slow, nzec, abort] = out.batch as [
      Dumped,
      Dumped,
      Dumped,
      Dumped,
      Dumped,
      Dumped,
      Dumped,
      Dumped,
      Dumped,
    ]
    t.match(c, { status: 3, stdout: '5\n' }, 'C, with stdin')
    t.match(java, { status: 3, stdout: 'java 42\n' }, 'Java')
    t.match(rust, { status: 3, stdout: 'rust 10\n' }, 'Rust')
    t.equal(cpp.status, 6, 'a compile error is Compilation Error')
    t.match(cpp.compile_output, /error/, "with the compiler's output")
    t.equal(cpp.stdout, null, 'and nothing run')
    t.match(wrong, { status: 4, stdout: '41\n' }, 'output other than expected_output is Wrong Answer')
    t.match(right, { status: 3, stdout: '42  \n' }, 'trailing whitespace and blank lines do not count')
    t.match(slow, { status: 5, message: 'Time limit exceeded' }, 'past wall_time_limit is Time Limit Exceeded')
    t.match(
      nzec,
      { status: 11, exit_code: 3, stderr: 'boom', message: 'Exited with error status 3' },
      'a non-zero exit is NZEC',
    )
    t.match(abort, { status: 10, exit_signal: 6 }, 'SIGABRT is its own runtime error')
  },
)

t.test('wait=true answers with the finished submission, in plain text unless base64_encoded=true', async (t) => {
  const res = await judge0(
    'POST',
    '/submissions?wait=true&base64_encoded=false&fields=token,stdout,stderr,status,exit_code,language_id,time,memory',
    {
      source_code: 'import sys, json\nprint(json.dumps(sys.argv[1:]), flush=True)\nsys.stderr.write("to stderr\\n")\n',
      language_id: 71,
      command_line_arguments: `a 'b c' "d \\"e\\"" $HOME`,
      redirect_stderr_to_stdout: true,
      cpu_time_limit: 5,
      memory_limit: 128000,
    },
  )
  t.equal(res.status, 201)
  t.same(
    Object.keys(res.json),
    ['token', 'stdout', 'stderr', 'status', 'exit_code', 'language_id', 'time', 'memory'],
    'the fields asked for, in that order',
  )
  t.match(res.json, {
    status: { id: 3, description: 'Accepted' },
    exit_code: 0,
    language_id: 71,
    stderr: null,
    memory: null,
  })
  // The two streams reach the worker through two pipes: which comes first is not kept (docs/judge0.md).
  t.match(
    res.json.stdout,
    /\["a", "b c", "d \\"e\\"", "\$HOME"\]/,
    'arguments split as a shell would, nothing expanded',
  )
  t.match(res.json.stdout, /to stderr\n/, 'stderr redirected into stdout')
  t.equal(
    (res.json.stdout as string).length,
    '["a", "b c", "d \\"e\\"", "$HOME"]\nto stderr\n'.length,
    'both streams whole, nothing else',
  )
  t.match(res.json.time, /^\d+\.\d{3}$/, 'time as Judge0 writes it')

  const token = res.json.token as string
  const b64 = await judge0('GET', `/submissions/${token}?base64_encoded=true&fields=stdout,status_id`)
  t.equal(b64.status, 200)
  t.equal(Buffer.from(b64.json.stdout as string, 'base64').toString(), res.json.stdout, 'the same output, base64')
  t.equal(b64.json.status_id, 3)
  const plain = await judge0('GET', `/submissions/${token}`)
  t.same(
    Object.keys(plain.json).sort(),
    ['compile_output', 'memory', 'message', 'status', 'stderr', 'stdout', 'time', 'token'],
    "Judge0's default fields",
  )
  t.same(
    (await judge0('GET', `/submissions/${token}?fields=stdout,bogus`)).json,
    { error: 'invalid fields: [bogus]', code: 'AIRLOCK_ERR_VALIDATION' },
    "an unknown field is a 400 in Judge0 words, with Airlock's code",
  )

  const listed = await judge0('GET', '/submissions?per_page=100&fields=token,status')
  t.equal(listed.status, 200)
  t.ok(
    (listed.json.submissions as { token: string }[]).some((s) => s.token === token),
    "the tenant's list has it",
  )
  t.match(listed.json.meta, { current_page: 1 })
})

t.test('numbered pages walk the list in order: none twice, none skipped, then empty', async (t) => {
  const all = (await h.request('GET', '/v1/jobs?limit=100')).json<{ items: { id: string }[] }>().items.map((i) => i.id)
  t.ok(all.length >= 3, `alice has ${all.length} jobs to page through`)
  const pages = Math.ceil(all.length / 2)
  const seen: string[] = []
  for (let page = 1; page <= pages + 1; page++) {
    const { status, json } = await judge0('GET', `/submissions?page=${page}&per_page=2&fields=token`)
    t.equal(status, 200)
    const tokens = (json.submissions as { token: string }[]).map((s) => s.token)
    const meta = json.meta as { next_page: number | null }
    if (page <= pages) t.equal(meta.next_page, page < pages ? page + 1 : null, `page ${page}'s next page`)
    else t.same(tokens, [], 'past the last page: none')
    seen.push(...tokens)
  }
  t.same(seen, all, 'the pages together are the list, in its order')
})

t.test("another tenant's token is not found, and cannot be cancelled", async (t) => {
  const mine = await judge0('POST', '/submissions', { source_code: 'print(1)', language_id: 71 })
  t.equal(mine.status, 201)
  const token = mine.json.token as string
  for (const [method, url] of [
    ['GET', `/submissions/${token}`],
    ['DELETE', `/submissions/${token}`],
  ] as const) {
    const res = await judge0(method, url, undefined, TENANTS.bob)
    t.equal(res.status, 404, `${method} by bob`)
    t.type(res.json.error, 'string', 'with a Judge0 error')
  }
  const batch = await judge0(
    'GET',
    `/submissions/batch?tokens=${token},job_00000000000000000000000000000000&fields=token`,
    undefined,
    TENANTS.bob,
  )
  t.same(batch.json, { submissions: [null, null] }, 'a batch read shows nothing of it')
  const twice = await judge0('GET', `/submissions/batch?tokens=${token},${token}&fields=token`)
  t.equal(twice.status, 400, 'a token listed twice is refused: the job would be read twice in one request')
  t.same(twice.json, {
    error: `submission ${token} is listed more than once in a batch; list each once`,
    code: 'AIRLOCK_ERR_VALIDATION',
  })
})

t.test('DELETE cancels a running submission, which then reads as Internal Error', async (t) => {
  const res = await judge0('POST', '/submissions', {
    source_code: 'import time\ntime.sleep(30)\n',
    language_id: 71,
    wall_time_limit: 30,
  })
  const token = res.json.token as string
  const del = await judge0('DELETE', `/submissions/${token}?fields=token,status`)
  t.equal(del.status, 200)
  t.equal(del.json.token, token)
  const job = await h.poll(token, (j) => j.status === 'cancelled')
  t.equal(job.status, 'cancelled')
  t.match((await judge0('GET', `/submissions/${token}?fields=status,message`)).json, {
    status: { id: 13 },
    message: /^Cancelled/,
  })
})

t.test('what Judge0 clients get wrong, or Airlock refuses, is a clear 4xx in Judge0 shapes', async (t) => {
  const noKey = await judge0('GET', '/languages', undefined, null)
  t.equal(noKey.status, 401, 'no key')
  t.match(noKey.json.error, /X-Auth-Token/)
  t.equal((await judge0('GET', '/languages', undefined, 'not-a-key')).status, 401, 'a wrong key')
  const bearer = await h.app.inject({
    method: 'GET',
    url: '/judge0/statuses',
    headers: { authorization: `Bearer ${TENANTS.alice}` },
  })
  t.equal(bearer.statusCode, 200, 'Authorization: Bearer works too')
  const unknown = await judge0('GET', '/nope', undefined, null)
  t.equal(unknown.status, 401, 'a path the API does not have is refused without a key, as every other')
  t.match(
    (await judge0('GET', '/nope')).json,
    { error: /no route GET \/judge0\/nope/, code: 'AIRLOCK_ERR_ROUTE_NOT_FOUND' },
    "and is 404 in Judge0's shape with one",
  )
  const put = await h.app.inject({
    method: 'PUT',
    url: '/judge0/submissions',
    headers: { 'x-auth-token': TENANTS.alice },
  })
  t.equal(put.statusCode, 405)
  t.match(put.headers.allow, /GET/)
  t.equal(
    (await judge0('GET', '/submissions?page=1000&per_page=100')).status,
    400,
    'a page past how deep the list reaches',
  )
  t.equal(
    (await judge0('DELETE', '/submissions/job_x:artifact:0')).status,
    404,
    'a token that is not a job id names nothing',
  )

  const submit = (body: Record<string, unknown>) =>
    judge0('POST', '/submissions', { source_code: 'print(1)', language_id: 71, ...body })
  t.same(
    await submit({ language_id: 999 }),
    { status: 422, json: { language_id: ["language with id 999 doesn't exist"] } },
    'an unknown language',
  )
  t.same(
    await submit({ enable_network: true }),
    { status: 422, json: { enable_network: ['this option cannot be enabled'] } },
    'network, as Judge0 refuses it',
  )
  const callback = await submit({ callback_url: 'http://127.0.0.1:1/hook' })
  t.equal(callback.status, 422, 'a callback')
  t.match(callback.json.callback_url, [/no outbound requests/])
  t.match((await submit({ compiler_options: '-O3' })).json.compiler_options, [/not supported/], 'compiler options')
  t.match((await submit({ additional_files: 'UEsDBA==' })).json.additional_files, [/not supported/], 'additional files')
  t.same((await submit({ source_code: '' })).json, { source_code: ["can't be blank"] }, 'no source')
  t.same(
    (await submit({ cpu_time_limit: 'soon' })).json,
    { cpu_time_limit: ['must be a number of seconds'] },
    'a limit that is not a number',
  )
  t.same(
    (await submit({ memory_limit: 1024 })).json,
    { memory_limit: ['must be at least 16384 (kilobytes)'] },
    'memory below what a sandbox needs',
  )
  t.same(
    (await submit({ cpu_time_limt: 1 })).json,
    { cpu_time_limt: ['is not a Judge0 submission attribute'] },
    'a misspelt attribute',
  )
  t.same((await submit({ command_line_arguments: "'open" })).json, {
    command_line_arguments: ['has a quote that is not closed'],
  })
  // A command line is split a character at a time: one longer than any valid one is
  // refused by its length, and one of many words is not split past the most allowed.
  const longLine = await submit({ command_line_arguments: 'a '.repeat(950_000) })
  t.equal(longLine.status, 422, 'a command line longer than 64 arguments at their longest')
  t.match(longLine.json.command_line_arguments, [/at most \d+ characters/])
  t.equal(splitCommandLine('a '.repeat(10_000))?.length, MAX_ARGS + 1, 'splitting stops one word past the most')
  const bigStdin = await submit({ stdin: 'x'.repeat(1024 * 1024 + 1) })
  t.equal(bigStdin.status, 422, 'stdin past the bound POST /v1/jobs holds it to')
  t.match(bigStdin.json.stdin, [/at most 1048576 characters/])
  const tooLong = await submit({ wall_time_limit: 100000 })
  t.equal(tooLong.status, 422, "above the server's maximum")
  t.match(tooLong.json.wall_time_limit, [/maximum/])
  t.same(
    (await judge0('POST', '/submissions?base64_encoded=true', { source_code: 'not base64!', language_id: 71 })).json,
    { source_code: ['is not valid base64 (base64_encoded=true)'] },
  )

  const batch = await judge0('POST', '/submissions/batch', {
    submissions: [
      { source_code: 'print(1)', language_id: 999 },
      { language_id: 71, enable_network: true },
    ],
  })
  t.same(
    batch,
    {
      status: 422,
      json: [
        { language_id: ["language with id 999 doesn't exist"] },
        { source_code: ["can't be blank"], enable_network: ['this option cannot be enabled'] },
      ],
    },
    'a batch answers each in its place',
  )
  const mixed = await judge0('POST', '/submissions/batch', {
    submissions: [
      { source_code: 'print(1)', language_id: 999 },
      { source_code: 'print(2)', language_id: 71 },
      { language_id: 71 },
      { source_code: 'print(3)', language_id: 71 },
    ],
  })
  t.equal(mixed.status, 201, 'a batch that took some is created')
  const answers = mixed.json as unknown as Record<string, unknown>[]
  t.same(answers[0], { language_id: ["language with id 999 doesn't exist"] })
  t.same(answers[2], { source_code: ["can't be blank"] })
  t.match(answers[1], { token: /^job_[0-9a-f]{32}$/ }, 'each taken one has its token in its place')
  t.match(answers[3], { token: /^job_[0-9a-f]{32}$/ })
  t.not(answers[1]!.token, answers[3]!.token)
  t.same((await judge0('POST', '/submissions/batch', { submissions: [] })).json, {
    error: 'there should be at least one submission in a batch',
    code: 'AIRLOCK_ERR_VALIDATION',
  })
  t.equal((await judge0('GET', '/submissions/job_00000000000000000000000000000000')).status, 404, 'an unknown token')
})

t.test('languages, statuses, about and config_info have Judge0 shapes', async (t) => {
  const languages = await judge0('GET', '/languages')
  t.equal(languages.status, 200)
  const list = languages.json as unknown as { id: number; name: string }[]
  t.same(
    list.map((l) => l.id),
    [46, 48, 49, 50, 52, 53, 54, 60, 62, 63, 71, 73],
  )
  t.ok(
    list.every((l) => Object.keys(l).length === 2 && typeof l.name === 'string'),
    'id and name, as Judge0 lists them',
  )
  t.match((await judge0('GET', '/languages/62')).json, {
    id: 62,
    name: /^Java \(OpenJDK 17/,
    is_archived: false,
    source_file: 'Main.java',
    compile_cmd: /javac/,
    run_cmd: /java/,
  })
  t.equal((await judge0('GET', '/languages/1')).status, 404, 'a language Airlock does not offer')

  const statuses = (await judge0('GET', '/statuses')).json as unknown as { id: number; description: string }[]
  t.equal(statuses.length, 14)
  t.same(statuses[5], { id: 6, description: 'Compilation Error' })
  t.same(statuses[10], { id: 11, description: 'Runtime Error (NZEC)' })
  t.match((await judge0('GET', '/about')).json, { version: '1.13.1' })
  t.match((await judge0('GET', '/config_info')).json, {
    enable_wait_result: true,
    enable_network: false,
    allow_enable_network: false,
    enable_callbacks: false,
    enable_compiler_options: false,
    wall_time_limit: 10,
    max_memory_limit: 2048 * 1024,
  })
})
