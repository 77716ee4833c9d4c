import { request as httpRequest } from 'node:http'
import fc from 'fast-check'
import t from 'tap'
import WebSocket from 'ws'
import { ErrorCodes } from '../../core/errors.js'
import { build, TENANTS } from '../helper.js'
import { rawRequest } from '../raw-http.js'

// Hostile input at every route: never a 5xx, never a crash or a hang, and every refusal
// is a 4xx with a code from the catalogue.

const KNOWN_CODES = new Set(Object.keys(ErrorCodes))
const RUNS = Number(process.env.AIRLOCK_FUZZ_RUNS ?? 150)

type Inject = { statusCode: number; body: string; json: () => unknown }

function refusedProperly(res: Inject): boolean {
  if (res.statusCode >= 500) return false
  if (res.statusCode < 400) return true
  const body = res.json() as { code?: string; statusCode?: number }
  return typeof body.code === 'string' && KNOWN_CODES.has(body.code) && body.statusCode === res.statusCode
}

// Strings that tend to break things: traversal, absolute paths, NUL, control and
// non-BMP characters, huge ones.
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(
    '../../etc/passwd',
    '/etc/shadow',
    'a/../../b',
    '\0',
    'a\0b',
    '\u202e',
    '😀'.repeat(10),
    '.',
    '..',
    '//',
    'C:\\x',
    '%2e%2e%2f',
  ),
  fc.string({ minLength: 300, maxLength: 5000 }),
)
const anyJson = fc.jsonValue({ maxDepth: 6 })

const jobLike = fc.record(
  {
    runtime: fc.oneof(fc.constantFrom('python', 'node', 'bash'), nasty, anyJson),
    source: fc.oneof(fc.string(), nasty, anyJson),
    files: fc.oneof(
      fc.array(fc.record({ path: fc.oneof(nasty, anyJson), content: fc.oneof(fc.string(), anyJson) }), {
        maxLength: 120,
      }),
      anyJson,
    ),
    entrypoint: fc.oneof(nasty, anyJson),
    args: fc.oneof(fc.array(nasty, { maxLength: 70 }), anyJson),
    stdin: fc.oneof(fc.string(), anyJson),
    env: fc.oneof(fc.dictionary(nasty, nasty, { maxKeys: 70 }), anyJson),
    limits: fc.oneof(
      fc.record(
        {
          timeoutMs: anyJson,
          memoryMb: fc.oneof(fc.integer(), fc.double()),
          cpus: fc.oneof(fc.double(), anyJson),
          pids: fc.integer(),
          outputBytes: fc.integer(),
        },
        { requiredKeys: [] },
      ),
      anyJson,
    ),
  },
  { requiredKeys: [] },
)

t.test('every route refuses hostile input with a 4xx and a code', async (t) => {
  const h = await build(t, { worker: false, listen: true })
  const post = (payload: string | Buffer, contentType = 'application/json') =>
    h.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${TENANTS.alice}`, 'content-type': contentType },
      payload,
    })

  await fc.assert(
    fc.asyncProperty(jobLike, async (body) => refusedProperly(await post(JSON.stringify(body)))),
    { numRuns: RUNS },
  )
  t.pass('POST /v1/jobs with job-shaped garbage')

  await fc.assert(
    fc.asyncProperty(anyJson, async (body) => refusedProperly(await post(JSON.stringify(body)))),
    { numRuns: RUNS },
  )
  t.pass('POST /v1/jobs with any JSON value')

  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
      const res = await post(Buffer.from(bytes))
      return refusedProperly(res)
    }),
    { numRuns: RUNS },
  )
  t.pass('POST /v1/jobs with random bytes, invalid UTF-8 included')

  // '', '.' and '..' (dot segments the URL parser removes) address the listing
  // GET /v1/jobs/ or its parent, not a job.
  const ids = fc
    .oneof(nasty, fc.stringMatching(/^job_[0-9a-f]{32}$/))
    .filter((s) => !['', '.', '..'].includes(s))
    .map((s) => encodeURIComponent(s))
  await fc.assert(
    fc.asyncProperty(
      ids,
      fc.constantFrom('GET', 'DELETE'),
      fc.constantFrom('', '/logs', '/stream-tokens'),
      async (id, method, tail) => {
        const m = tail === '/stream-tokens' ? 'POST' : tail === '/logs' ? 'GET' : method
        const res = await h.app.inject({
          method: m as 'GET',
          url: `/v1/jobs/${id}${tail}`,
          headers: { authorization: `Bearer ${TENANTS.alice}` },
        })
        return refusedProperly(res) && res.statusCode !== 200
      },
    ),
    { numRuns: RUNS },
  )
  t.pass('job routes with hostile ids')

  await fc.assert(
    fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 300 }), async (header) => {
      const res = await h.app.inject({
        method: 'GET',
        url: '/v1/runtimes',
        headers: { authorization: header.replace(/[\r\n]/g, '') },
      })
      return refusedProperly(res)
    }),
    { numRuns: RUNS },
  )
  t.pass('any Authorization header')

  // Request targets spelled every way a router might decode: percent-encoded characters
  // (upper and lower case hex, double-encoded), dot segments, doubled slashes, and the
  // absolute form. Without a key none reaches a handler; none is ever a 5xx.
  const port = Number(new URL(h.baseUrl).port)
  const segment = fc.constantFrom(
    'v1',
    'jobs',
    'runtimes',
    'audit',
    'logs',
    'stream',
    'stream-tokens',
    'admin',
    'queue',
    'tenants',
    '.',
    '..',
    '',
    'job_0123456789abcdef0123456789abcdef',
  )
  const spell = (s: string) =>
    fc
      .array(fc.constantFrom('plain', 'upper', 'lower', 'double'), { minLength: s.length, maxLength: s.length })
      .map((ways) =>
        [...s]
          .map((c, i) => {
            const hex = c.charCodeAt(0).toString(16).padStart(2, '0')
            return ways[i] === 'upper'
              ? `%${hex.toUpperCase()}`
              : ways[i] === 'lower'
                ? `%${hex}`
                : ways[i] === 'double'
                  ? `%25${hex}`
                  : c
          })
          .join(''),
      )
  const target = fc
    .array(segment.chain(spell), { minLength: 1, maxLength: 5 })
    .chain((parts) =>
      fc.tuple(
        fc.constant(`/${parts.join('/')}`),
        fc.constantFrom('', `http://127.0.0.1:${port}`, 'http://elsewhere.invalid'),
        fc.constantFrom('', '?wait=true', '?from=1&token=x'),
      ),
    )
    .map(([path, origin, query]) => `${origin}${path}${query}`)
  await fc.assert(
    fc.asyncProperty(target, fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'), async (path, method) => {
      const body = method === 'POST' || method === 'PUT' ? '{"runtime":"bash","source":"echo ran"}' : ''
      const res = await rawRequest(
        port,
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}`,
        body,
      )
      const publicPath = /^\/?(docs|healthz|readyz)/.test(path.replace(/^http:\/\/[^/]+/, '').replace(/^\//, ''))
      // `/` sends a browser to the console's page, which asks for a key itself.
      const toConsole = res.status >= 300 && res.status < 400 && res.headers.location === '/console/'
      return res.status !== 0 && res.status < 500 && (res.status >= 400 || publicPath || toConsole)
    }),
    { numRuns: RUNS },
  )
  t.pass('keyless requests to percent-encoded and absolute-form targets')

  const cases: [string, string, number, string][] = [
    ['deeply nested JSON', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 400, 'AIRLOCK_ERR_JSON_TOO_COMPLEX'],
    [
      'deeply nested object in a field',
      `{"runtime":"python","source":"x","env":${'{"a":'.repeat(5000)}1${'}'.repeat(5001)}`,
      400,
      'AIRLOCK_ERR_JSON_TOO_COMPLEX',
    ],
    [
      'too many files',
      JSON.stringify({
        runtime: 'python',
        files: Array.from({ length: 101 }, (_, i) => ({ path: `f${i}.py`, content: '' })),
        entrypoint: 'f0.py',
      }),
      400,
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'a huge string',
      JSON.stringify({ runtime: 'python', source: 'x'.repeat(1_100_000) }),
      400,
      'AIRLOCK_ERR_VALIDATION',
    ],
    [
      'a NUL byte in a path',
      JSON.stringify({ runtime: 'python', files: [{ path: 'a\u0000.py', content: '' }] }),
      400,
      'AIRLOCK_ERR_INVALID_FILE',
    ],
    // Once taken (202) and written to the job's file as U+FFFD: a program other than the one sent.
    ['a lone surrogate', '{"runtime":"python","source":"\\ud800"}', 400, 'AIRLOCK_ERR_MALFORMED_JSON'],
  ]
  for (const [name, payload, status, code] of cases) {
    const res = await post(payload)
    t.equal(res.statusCode, status, `${name}: ${res.statusCode} ${res.body.slice(0, 120)}`)
    if (code) t.equal((res.json() as { code: string }).code, code, `${name}: code`)
  }

  // Headers past Node's limit never reach fastify; they still get our shape.
  const big = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const url = new URL(`${h.baseUrl}/v1/runtimes`)
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { authorization: `Bearer ${'x'.repeat(20_000)}` },
      },
      (res) => {
        let body = ''
        res.on('data', (d: Buffer) => (body += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      },
    )
    req.on('error', reject)
    req.end()
  })
  t.equal(big.status, 431)
  t.equal((JSON.parse(big.body) as { code: string }).code, 'AIRLOCK_ERR_HEADERS_TOO_LARGE')

  const health = await h.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(health.statusCode, 200, 'still healthy afterwards')
})

t.test('WebSocket misuse: bad from, binary frames and floods neither crash nor stall the server', async (t) => {
  const h = await build(t, { listen: true })
  const ws = (path: string) =>
    new WebSocket(`${h.baseUrl.replace('http', 'ws')}${path}`, {
      headers: { authorization: `Bearer ${TENANTS.alice}` },
    })
  const { id } = (
    await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'import time\ntime.sleep(2)\nprint("done")' })
  ).json<{ id: string }>()

  for (const from of ['-1', 'abc', '1.5', '99999999999999999999', '%00']) {
    const status = await new Promise<number>((resolve) => {
      const c = ws(`/v1/jobs/${id}/stream?from=${from}`)
      c.on('unexpected-response', (req, res) => {
        req.destroy()
        resolve(res.statusCode ?? 0)
      })
      c.on('open', () => {
        c.terminate()
        resolve(101)
      })
      c.on('error', () => undefined)
    })
    t.equal(status, 400, `from=${from} is refused before the upgrade`)
  }

  // A client that floods text and binary frames, and one that sends an oversized frame.
  const flooder = ws(`/v1/jobs/${id}/stream`)
  await new Promise((r) => flooder.once('open', r))
  for (let i = 0; i < 2000; i++) flooder.send(i % 2 ? Buffer.alloc(512, 1) : 'x'.repeat(512))
  const oversized = ws(`/v1/jobs/${id}/stream`)
  await new Promise((r) => oversized.once('open', r))
  const oversizedClose = new Promise<number>((resolve) => oversized.once('close', (code) => resolve(code)))
  oversized.send(Buffer.alloc(64 * 1024))
  t.equal(await oversizedClose, 1009, 'an oversized frame closes that client (1009)')

  // Meanwhile the server keeps serving: a well-behaved client gets the whole job.
  const events: { type: string; data?: string }[] = []
  const good = ws(`/v1/jobs/${id}/stream`)
  good.on('message', (m) => events.push(JSON.parse(m.toString()) as { type: string; data?: string }))
  const goodClose = await new Promise<number>((resolve) => good.once('close', (code) => resolve(code)))
  t.equal(goodClose, 1000)
  t.ok(events.some((e) => e.type === 'log' && e.data === 'done\n'))
  t.equal(events[events.length - 1]?.type, 'end')
  flooder.terminate()
  const health = await h.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(health.statusCode, 200)
})
