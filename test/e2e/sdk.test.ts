import t from 'tap'
import { createServer as createHttpServer } from 'node:http'
import { createServer, connect, type Socket } from 'node:net'
import { readFile } from 'node:fs/promises'
import { inspect } from 'node:util'
import {
  Airlock,
  AuthenticationError,
  ConflictError,
  ConnectionError,
  ForbiddenError,
  NotFoundError,
  RateLimitError,
  TimeoutError,
  UnavailableError,
  ValidationError,
  errorFromResponse,
  type JobEvent,
} from '../../sdk/src/index.js'
import { ADMIN_TS_TARGET, renderTypeScript, TS_TARGET } from '../../scripts/sdk-types.js'
import { build, TENANTS } from '../helper.js'

const h = await build(t, { listen: true })
const airlock = new Airlock({ baseUrl: h.baseUrl, apiKey: TENANTS.alice })

const TICKS = `for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.3; done; echo done >&2`

t.test("the SDK's types are generated from the server's schemas and up to date", async (t) => {
  const committed = await readFile(new URL(`../../${TS_TARGET}`, import.meta.url), 'utf8')
  t.equal(committed, await renderTypeScript(), 'regenerate with: npm run build && node dist/scripts/sdk-types.js')
  const admin = await readFile(new URL(`../../${ADMIN_TS_TARGET}`, import.meta.url), 'utf8')
  t.equal(admin, await renderTypeScript('admin'), "the admin API's types (the console's) too")
})

t.test('run: submits, streams output while the job runs, and returns the finished job', async (t) => {
  const seen: { stream: string; data: string; at: number }[] = []
  const statuses: string[] = []
  const job = await airlock.run(
    { runtime: 'bash', source: TICKS },
    { onOutput: (stream, data) => seen.push({ stream, data, at: Date.now() }), onStatus: (s) => statuses.push(s) },
  )
  t.equal(job.status, 'succeeded')
  t.equal(job.stdout, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n')
  t.equal(job.stderr, 'done\n')
  t.equal(
    seen
      .filter((s) => s.stream === 'stdout')
      .map((s) => s.data)
      .join(''),
    job.stdout,
  )
  t.ok(seen[0]!.at < Date.parse(job.finishedAt!) - 500, 'the first output arrived well before the job ended')
  t.ok(statuses.includes('running'))
})

t.test('create, stream, wait, get, list and logs', async (t) => {
  const { id, status } = await airlock.jobs.create({ runtime: 'bash', source: TICKS })
  t.equal(status, 'queued')
  const events: JobEvent[] = []
  for await (const e of airlock.jobs.stream(id)) events.push(e)
  t.equal(events.at(-1)?.type, 'end', 'the stream ends with the end event')
  t.same(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
    'every event once, in order',
  )
  const job = await airlock.jobs.wait(id)
  t.equal(job.status, 'succeeded')
  t.equal((await airlock.jobs.get(id)).stdout, job.stdout)
  t.ok(
    (await airlock.jobs.list({ limit: 5 })).items.some((j) => j.id === id),
    'listed',
  )
  t.ok(
    (await airlock.jobs.list({ status: ['failed'] })).items.every((j) => j.status === 'failed'),
    'filtered by status',
  )
  const all = []
  for await (const j of airlock.jobs.iterate({ limit: 1 })) all.push(j.id)
  t.same(
    all,
    (await airlock.jobs.list({ limit: 100 })).items.map((j) => j.id),
    'iterate walks every page of one job each',
  )
  const firstTwo = []
  for await (const j of airlock.jobs.iterate({ max: 2 })) firstTwo.push(j.id)
  t.same(firstTwo, all.slice(0, 2), 'max: how many jobs in all')
  const acrossPages = []
  for await (const j of airlock.jobs.iterate({ limit: 1, max: 3 })) acrossPages.push(j.id)
  t.same(acrossPages, all.slice(0, 3), 'max across pages of limit each')
  t.match(await airlock.jobs.logs(id), /tick 1\ntick 2/)
  const batch = await airlock.jobs.createBatch([
    { runtime: 'bash', source: 'echo one' },
    { runtime: 'nope', source: 'x' },
    { runtime: 'python', source: 'print(2)' },
  ])
  t.same([batch.accepted, batch.refused], [2, 1])
  const refused = batch.items[1]!
  t.equal(
    'error' in refused && refused.error.code,
    'AIRLOCK_ERR_UNKNOWN_RUNTIME',
    'a refused job says why, as a single submit would',
  )
  const ran = await Promise.all(batch.items.flatMap((i) => ('id' in i ? [airlock.jobs.wait(i.id)] : [])))
  t.same(
    ran.map((j) => [j.status, j.stdout]),
    [
      ['succeeded', 'one\n'],
      ['succeeded', '2\n'],
    ],
    'the accepted jobs of a batch run',
  )
  const submitted = await airlock.jobs.request(id)
  t.same([submitted.runtime, submitted.files?.[0]?.content], ['bash', TICKS], 'the job as it was submitted')
  t.ok((submitted.limits?.timeoutMs ?? 0) > 0, 'with its limits filled in')
  t.same((await airlock.runtimes()).map((r) => r.name).sort(), [
    'bash',
    'c',
    'cpp',
    'go',
    'java',
    'ml-python',
    'node',
    'python',
    'rust',
  ])
})

t.test('cancel: a running job ends cancelled; cancelling it again is a ConflictError', async (t) => {
  const { id } = await airlock.jobs.create({ runtime: 'bash', source: 'sleep 30' })
  for (let i = 0; i < 200 && (await airlock.jobs.get(id)).status !== 'running'; i++)
    await new Promise((r) => setTimeout(r, 50))
  await airlock.jobs.cancel(id)
  t.equal((await airlock.jobs.wait(id)).status, 'cancelled')
  t.equal((await airlock.jobs.wait(id)).status, 'cancelled')
  await t.rejects(airlock.jobs.cancel(id), ConflictError)
})

t.test('each error class, from the real server where it can produce it', async (t) => {
  await t.rejects(new Airlock({ baseUrl: h.baseUrl, apiKey: 'wrong-key-123' }).jobs.list(), AuthenticationError)
  const forbidden = await airlock.jobs
    .create({ runtime: 'bash', source: 'true', isolation: 'runc' })
    .catch((e: unknown) => e)
  t.ok(forbidden instanceof ForbiddenError, 'a good key that may not do this: ForbiddenError')
  t.notOk(forbidden instanceof AuthenticationError, 'not an authentication error')
  t.match(forbidden, { code: 'AIRLOCK_ERR_ISOLATION_FORBIDDEN', status: 403 })
  await t.rejects(airlock.jobs.get('job_00000000000000000000000000000000'), NotFoundError)
  const invalid = await airlock.jobs.create({ runtime: 'cobol', source: 'x' }).catch((e: unknown) => e)
  t.ok(invalid instanceof ValidationError)
  t.equal((invalid as ValidationError).code, 'AIRLOCK_ERR_UNKNOWN_RUNTIME')
  t.equal((invalid as ValidationError).status, 400)
  const { id } = await airlock.jobs.create({ runtime: 'bash', source: 'sleep 5' })
  await t.rejects(airlock.jobs.wait(id, { timeoutMs: 300 }), TimeoutError)
  await t.rejects(
    new Airlock({ baseUrl: 'http://127.0.0.1:9', apiKey: 'k', maxRetries: 1 }).jobs.list(),
    ConnectionError,
  )
  const controller = new AbortController()
  const pending = airlock.jobs.wait(id, { signal: controller.signal })
  controller.abort()
  await t.rejects(pending, { code: 'AIRLOCK_SDK_ABORTED' })
  await airlock.jobs.cancel(id)
  t.equal((await airlock.jobs.wait(id)).status, 'cancelled')
  t.throws(() => new Airlock({ baseUrl: h.baseUrl, apiKey: '' }), { code: 'AIRLOCK_SDK_CONFIG' })
  // A client logged with an error does not log its key.
  const logged = new Airlock({ baseUrl: h.baseUrl, apiKey: 'ak_do_not_log_me' })
  t.notMatch(inspect(logged, { depth: 10, showHidden: true }), /ak_do_not_log_me/, 'util.inspect shows no key')
  t.notMatch(JSON.stringify(logged), /ak_do_not_log_me/, 'JSON.stringify shows no key')

  // When no live worker can isolate jobs, the API refuses new ones with 503.
  const noWorker = await build(t, { listen: true, env: { AIRLOCK_RUNSC_PATH: '/nonexistent/runsc' } })
  const refused = await new Airlock({ baseUrl: noWorker.baseUrl, apiKey: TENANTS.alice, maxRetries: 0 }).jobs
    .create({ runtime: 'bash', source: 'true' })
    .catch((e: unknown) => e)
  t.ok(refused instanceof UnavailableError)
  t.equal((refused as UnavailableError).code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')
})

t.test('429: RateLimitError carries retryAfterMs, and the SDK waits that long and retries', async (t) => {
  // The server has no rate limits yet (they come with tenants and quotas), so a tiny
  // HTTP server answers 429 here; the mapping and retry are the SDK's own code.
  t.match(errorFromResponse(429, { statusCode: 429, code: 'AIRLOCK_ERR_RATE_LIMITED', message: 'slow down' }, '2'), {
    constructor: RateLimitError,
    retryAfterMs: 2000,
    code: 'AIRLOCK_ERR_RATE_LIMITED',
  })
  let calls = 0
  const server = createHttpServer((_req, res) => {
    calls++
    if (calls === 1) {
      res
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': '0.3' })
        .end(JSON.stringify({ statusCode: 429, code: 'AIRLOCK_ERR_RATE_LIMITED', message: 'slow down' }))
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [], nextCursor: null }))
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const t0 = Date.now()
  t.same(await new Airlock({ baseUrl: url, apiKey: 'k' }).jobs.list(), { items: [], nextCursor: null })
  t.equal(calls, 2, 'retried once')
  t.ok(Date.now() - t0 >= 280, 'after Retry-After')
  calls = 0
  await t.rejects(new Airlock({ baseUrl: url, apiKey: 'k', maxRetries: 0 }).jobs.list(), RateLimitError)
})

t.test('a submit whose answer is lost is retried with its Idempotency-Key, and is one job', async (t) => {
  // A proxy that passes the first submit to the real server, then drops the connection
  // instead of answering: the job is made and the client never hears of it.
  const keys: (string | undefined)[] = []
  const made: string[] = []
  const proxy = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const key = req.headers['idempotency-key'] as string | undefined
    keys.push(key)
    const upstream = await fetch(`${h.baseUrl}${req.url}`, {
      method: req.method,
      headers: {
        authorization: req.headers.authorization!,
        'content-type': 'application/json',
        ...(key ? { 'idempotency-key': key } : {}),
      },
      body: Buffer.concat(chunks),
    })
    const text = await upstream.text()
    made.push(JSON.parse(text).id)
    if (keys.length === 1) return req.socket.destroy()
    res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(text)
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  t.teardown(() => proxy.close())
  const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`
  const accepted = await new Airlock({ baseUrl: url, apiKey: TENANTS.alice }).jobs.create({
    runtime: 'bash',
    source: 'true',
  })
  t.equal(keys.length, 2, 'the submit was sent again after its answer was lost')
  t.ok(keys[0] && keys[0] === keys[1], 'with the same Idempotency-Key')
  t.same(made, [accepted.id, accepted.id], 'and the server made one job of both')
  t.equal((await airlock.jobs.get(accepted.id)).id, accepted.id)
  const own = await airlock.jobs.create({ runtime: 'bash', source: 'true' }, { idempotencyKey: 'sdk-own-key-1' })
  const again = await airlock.jobs.create({ runtime: 'bash', source: 'true' }, { idempotencyKey: 'sdk-own-key-1' })
  t.equal(again.id, own.id, "a caller's own key holds across calls")
  await t.rejects(
    airlock.jobs.create({ runtime: 'bash', source: 'false' }, { idempotencyKey: 'sdk-own-key-1' }),
    ConflictError,
    'and another request with it is a ConflictError',
  )
  const batch = await airlock.jobs.createBatch([{ runtime: 'bash', source: 'true' }], { idempotencyKey: 'sdk-batch-1' })
  const batchAgain = await airlock.jobs.createBatch([{ runtime: 'bash', source: 'true' }], {
    idempotencyKey: 'sdk-batch-1',
  })
  t.same(batchAgain.items, [{ ...batch.items[0], replayed: true }], "and a batch's")
})

t.test('a stream whose connection is cut mid-job resumes without losing or repeating events', async (t) => {
  // A TCP proxy between the SDK and the server, whose connections are cut on demand.
  const target = new URL(h.baseUrl)
  const sockets = new Set<Socket>()
  let connections = 0
  const proxy = createServer((client) => {
    connections++
    const upstream = connect(Number(target.port), target.hostname)
    client.pipe(upstream).pipe(client)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => undefined)
      s.on('close', () => sockets.delete(s))
    }
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  t.teardown(() => proxy.close())
  const viaProxy = new Airlock({
    baseUrl: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
    apiKey: TENANTS.alice,
  })

  const { id } = await viaProxy.jobs.create({ runtime: 'bash', source: TICKS })
  const events: JobEvent[] = []
  let cut = false
  for await (const e of viaProxy.jobs.stream(id)) {
    events.push(e)
    if (!cut && e.type === 'log') {
      cut = true
      for (const s of sockets) s.destroy()
    }
  }
  t.ok(cut, 'the connection was cut after the first output')
  t.ok(connections >= 3, `the SDK reconnected (${connections} connections)`)
  t.same(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
    'no event lost or repeated',
  )
  const out = events.flatMap((e) => (e.type === 'log' && e.stream === 'stdout' ? [e.data] : [])).join('')
  t.equal(out, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n')
  t.equal(events.at(-1)?.type, 'end')
})
