import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { registerConsole } from '../../api/plugins/console.js'
import { redisKeys } from '../../core/redis-keys.js'
import { build, TENANTS } from '../helper.js'

// What the web console needs from the API, without a browser: its files and their
// headers, a job's request, and the operator's usage and metrics (test/console/ drives
// the page itself in Chromium).
const ADMIN_KEY = 'console-api-admin-key-0001'
const h = await build(t, { worker: false, env: { AIRLOCK_ADMIN_KEY: ADMIN_KEY } })
const admin = (url: string, key = ADMIN_KEY) =>
  h.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } })

t.test('the console is served at /console/ with a strict policy and a fresh style nonce on every page', async (t) => {
  const root = await h.app.inject({ method: 'GET', url: '/' })
  t.equal(root.statusCode, 302)
  t.equal(root.headers.location, '/console/')
  t.equal((await h.app.inject({ method: 'GET', url: '/console' })).headers.location, '/console/')
  const [one, two] = [
    await h.app.inject({ method: 'GET', url: '/console/' }),
    await h.app.inject({ method: 'GET', url: '/console/index.html' }),
  ]
  for (const page of [one, two]) {
    t.equal(page.statusCode, 200)
    t.match(page.headers['content-type'], /^text\/html/)
    const csp = String(page.headers['content-security-policy'])
    t.match(csp, /default-src 'none'/)
    t.match(csp, /script-src 'self'(;|$)/, 'scripts only from the server, none inline')
    t.match(csp, /connect-src 'self'/)
    t.match(csp, /frame-ancestors 'none'/)
    const nonce = /'nonce-([^']+)'/.exec(csp)?.[1]
    t.ok(nonce && page.body.includes(`content="${nonce}"`), 'the page carries the nonce its policy names')
    t.notMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script')
    t.notMatch(page.body, /https?:\/\//, 'nothing from another origin')
    t.equal(page.headers['cache-control'], 'no-store')
    t.equal(page.headers['referrer-policy'], 'no-referrer')
  }
  t.not(
    /'nonce-([^']+)'/.exec(String(one.headers['content-security-policy']))?.[1],
    /'nonce-([^']+)'/.exec(String(two.headers['content-security-policy']))?.[1],
    'a new nonce per response',
  )
  const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(one.body)?.[1]
  t.ok(script, 'the page loads its built script')
  const asset = await h.app.inject({ method: 'GET', url: script! })
  t.equal(asset.statusCode, 200)
  t.match(asset.headers['content-type'], /javascript/)
  t.match(asset.headers['cache-control'], /immutable/, 'hashed assets are cached for good')
  // Found by review 25: anyone may ask for these, so nothing costs more than the file.
  const ranges = Array.from({ length: 2000 }, (_, i) => `${i * 2}-${i * 2}`).join(',')
  const ranged = await h.app.inject({ method: 'GET', url: script!, headers: { range: `bytes=${ranges}` } })
  t.equal(ranged.statusCode, 200, 'a Range of 2,000 ranges is not parsed: the whole file')
  t.equal(ranged.headers['accept-ranges'], undefined, 'and no ranges are offered')
  t.equal((await h.app.inject({ method: 'GET', url: `${script!}.map` })).statusCode, 404, 'no source map is served')
  const missing = await h.app.inject({ method: 'GET', url: '/console/assets/nothing-here.js' })
  t.equal(missing.statusCode, 404, 'a file that is not there is a 404, not a 405')
  t.equal(missing.json().code, 'AIRLOCK_ERR_ROUTE_NOT_FOUND')
  t.equal(
    (await h.app.inject({ method: 'GET', url: '/console/../package.json' })).statusCode,
    404,
    'nothing outside the build is served',
  )
  t.equal((await h.app.inject({ method: 'GET', url: '/console/%2e%2e/%2e%2e/package.json' })).statusCode, 404)
  // The static files' own refusals (a dotfile, a directory) carry the code that says so.
  for (const url of ['/console/.env', '/console/assets/']) {
    const refused = await h.app.inject({ method: 'GET', url })
    t.equal(refused.statusCode, 403, `${url}: status`)
    t.equal(refused.json().code, 'AIRLOCK_ERR_FORBIDDEN', `${url}: code`)
  }
})

t.test('an install without the built console says so instead of serving a blank page', async (t) => {
  const empty = await mkdtemp(join(tmpdir(), 'airlock-no-console-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  const app = Fastify()
  await registerConsole(app, empty)
  const res = await app.inject({ method: 'GET', url: '/console/' })
  t.equal(res.statusCode, 503)
  t.match(res.body, /AIRLOCK_ERR_CONSOLE_UNAVAILABLE/)
  t.match(res.body, /npm run build/)
  await app.close()
})

t.test("a job's request is read back by its own tenant only, without what the worker adds", async (t) => {
  const body = {
    runtime: 'python',
    files: [
      { path: 'main.py', content: 'print(1)' },
      { path: 'data.bin', content: 'AAEC', encoding: 'base64' },
    ],
    stdin: 'in',
    args: ['x'],
    env: { A: '1' },
    tests: [{ stdin: '2' }],
  }
  const accepted = await h.request('POST', '/v1/jobs', body)
  t.equal(accepted.statusCode, 202)
  const { id } = accepted.json()
  const res = await h.request('GET', `/v1/jobs/${id}/request`)
  t.equal(res.statusCode, 200)
  const request = res.json()
  t.same(request.files, body.files)
  t.equal(request.entrypoint, 'main.py')
  t.same(
    [request.runtime, request.stdin, request.args, request.tests],
    ['python', body.stdin, body.args, [{ stdin: '2', args: [] }]],
  )
  t.notOk('env' in request, 'env values (often secrets) are not read back')
  t.equal(request.limits.timeoutMs, h.config.defaultTimeoutMs, 'limits with their defaults filled in')
  t.notOk('program' in request, "the worker's program is not part of it")
  t.equal(
    (await h.request('GET', `/v1/jobs/${id}/request`, undefined, 'bob')).statusCode,
    404,
    "another tenant's job is not found",
  )
  t.equal((await h.app.inject({ method: 'GET', url: `/v1/jobs/${id}/request` })).statusCode, 401)
  t.equal((await h.request('GET', '/v1/jobs/job_00000000000000000000000000000000/request')).statusCode, 404)
  // A job whose record goes (expires) between the tenant check and the read is a 404, never `{}`.
  const gone = (await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'print(2)' })).json().id
  await h.app.services.redis.hdel(redisKeys(h.config.redisPrefix).job(gone), 'spec')
  const res404 = await h.request('GET', `/v1/jobs/${gone}/request`)
  t.equal(res404.statusCode, 404)
  t.equal(res404.json().code, 'AIRLOCK_ERR_NOT_FOUND')
})

t.test("the operator's usage report lists every tenant with its quotas and what it holds", async (t) => {
  t.equal((await admin('/v1/admin/usage', TENANTS.alice)).statusCode, 401, 'a tenant key is not the admin key')
  const made = await h.app.inject({
    method: 'POST',
    url: '/v1/admin/tenants',
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
    payload: { name: 'dana', quotas: { maxQueued: 3 } },
  })
  t.equal(made.statusCode, 201)
  for (let i = 0; i < 2; i++)
    t.equal((await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' }, 'bob')).statusCode, 202)
  const report = (await admin('/v1/admin/usage')).json()
  t.same(report.defaults, {
    maxRunning: h.config.defaultMaxRunning,
    maxQueued: h.config.defaultMaxQueued,
    maxStoredBytes: h.config.defaultMaxStoredBytes,
  })
  const byName = Object.fromEntries(report.tenants.map((r: { name: string }) => [r.name, r]))
  t.same(Object.keys(byName).sort(), ['alice', 'bob', 'dana'], 'static tenants and tenants made through the admin API')
  t.same(byName.dana, {
    name: 'dana',
    source: 'admin',
    quotas: { maxQueued: 3 },
    usage: { queued: 0, running: 0, storedBytes: 0 },
  })
  t.equal(byName.bob.source, 'static')
  t.equal(byName.bob.usage.queued, 2, "bob's two queued jobs (no worker runs them here)")
  t.ok(byName.bob.usage.storedBytes > 0, 'and the bytes they hold')
})

t.test("the operator's metrics snapshot has the numbers /metrics has", async (t) => {
  const res = await admin('/v1/admin/metrics')
  t.equal(res.statusCode, 200)
  const { at, metrics } = res.json()
  t.ok(Math.abs(Date.parse(at) - Date.now()) < 60_000)
  const submitted = metrics.find((m: { name: string }) => m.name === 'airlock_jobs_submitted_total')
  t.equal(submitted.type, 'counter')
  const total = submitted.values.reduce((n: number, v: { value: number }) => n + v.value, 0)
  t.equal(
    total,
    await h.metrics.registry
      .getSingleMetric('airlock_jobs_submitted_total')!
      .get()
      .then((m) => m.values.reduce((n, v) => n + v.value, 0)),
  )
  const depth = metrics.find((m: { name: string }) => m.name === 'airlock_queue_depth')
  t.ok(
    depth.values.some((v: { labels: { state?: string } }) => v.labels.state === 'waiting'),
    'the queue gauges are read for it',
  )
  t.equal((await admin('/v1/admin/metrics', 'wrong')).statusCode, 401)
})
