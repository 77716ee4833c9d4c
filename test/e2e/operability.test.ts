import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { Redis } from 'ioredis'
import { operationIdProblems } from '../../api/openapi/document.js'
import { loadConfig } from '../../core/config.js'
import type { Job } from '../../core/job.js'
import { REASONS } from '../../core/job-lifecycle/reasons.js'
import { build, TENANTS } from '../helper.js'
import { exited, SERVER_JS, startAirlock, startRedis, until, workerEnv } from '../processes.js'
import { openStream } from '../ws-client.js'

/** Reads one sample of the Prometheus text format. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels)
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const labelText = /\{(.*)\}/.exec(line)?.[1] ?? ''
    if (want.every(([k, v]) => labelText.includes(`${k}="${v}"`))) return Number(line.split(' ').pop())
  }
  return 0
}

t.test('metrics move as jobs run', async (t) => {
  const h = await build(t, { listen: true })
  // The metrics listener serves this registry; the public port does not (next test).
  const scrape = () => h.metrics.registry.metrics()
  const before = await scrape()
  t.equal(sample(before, 'airlock_jobs_submitted_total', { runtime: 'bash' }), 0)

  await h.run({ runtime: 'bash', source: 'echo hello' })
  await h.run({ runtime: 'bash', source: 'exit 3' })
  await h.run({ runtime: 'python', source: 'while True: pass', limits: { timeoutMs: 500 } })
  await h.request('POST', '/v1/jobs', { runtime: 'cobol', source: 'x' })
  const streamed = (await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'echo streamed' })).json<{
    id: string
  }>().id
  await openStream(h.baseUrl, `/v1/jobs/${streamed}/stream`, { authorization: `Bearer ${TENANTS.alice}` })

  // A finished job's sandbox is removed just after its result is stored: the gauge of
  // running sandboxes reaches 0 a moment after the last result.
  await until(scrape, (text) => sample(text, 'airlock_active_sandboxes') === 0, 10_000, 'no sandbox running')
  const m = await scrape()
  t.equal(sample(m, 'airlock_jobs_submitted_total', { runtime: 'bash', tenant: 'alice' }), 3)
  t.equal(sample(m, 'airlock_jobs_submitted_total', { runtime: 'python', tenant: 'alice' }), 1)
  t.equal(sample(m, 'airlock_jobs_started_total', { runtime: 'bash', tenant: 'alice' }), 3)
  t.equal(sample(m, 'airlock_jobs_finished_total', { runtime: 'bash', status: 'succeeded' }), 2)
  t.equal(sample(m, 'airlock_jobs_finished_total', { runtime: 'bash', status: 'failed' }), 1)
  t.equal(sample(m, 'airlock_jobs_finished_total', { runtime: 'python', status: 'timeout' }), 1)
  t.equal(sample(m, 'airlock_job_end_to_end_seconds_count', { runtime: 'bash', status: 'succeeded' }), 2)
  t.equal(sample(m, 'airlock_job_run_seconds_count', { runtime: 'python', status: 'timeout' }), 1)
  t.ok(
    sample(m, 'airlock_job_run_seconds_sum', { runtime: 'python', status: 'timeout' }) >= 0.5,
    'the timeout ran for at least its limit',
  )
  t.equal(
    sample(m, 'airlock_sandbox_start_seconds_count', { runtime: 'bash', start: 'warm' }) +
      sample(m, 'airlock_sandbox_start_seconds_count', { runtime: 'bash', start: 'cold' }),
    3,
    'every start counted, warm or cold',
  )
  t.equal(
    sample(m, 'airlock_warm_claims_total', { runtime: 'bash', result: 'hit' }) +
      sample(m, 'airlock_warm_claims_total', { runtime: 'bash', result: 'miss' }),
    3,
    'each bash job looked for a warm sandbox',
  )
  t.equal(sample(m, 'airlock_job_queue_wait_seconds_count', { runtime: 'bash' }), 3)
  t.equal(sample(m, 'airlock_requests_rejected_total', { code: 'AIRLOCK_ERR_UNKNOWN_RUNTIME' }), 1)
  t.equal(sample(m, 'airlock_active_sandboxes'), 0)
  t.equal(sample(m, 'airlock_log_bytes_published_total'), 'hello\n'.length + 'streamed\n'.length)
  t.equal(sample(m, 'airlock_stream_bytes_sent_total'), 'streamed\n'.length)
  t.match(m, /airlock_queue_depth\{state="waiting"\} 0/)
  t.match(m, /airlock_queue_oldest_age_seconds 0/)
})

t.test('/metrics (tenant names and counts) is off the public port unless an operator puts it there', async (t) => {
  const closed = await build(t, { worker: false })
  const res = await closed.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 404, 'not served on the API port by default')
  t.equal(res.json().code, 'AIRLOCK_ERR_ROUTE_NOT_FOUND')
  t.equal(closed.config.metricsHost, '127.0.0.1', 'the metrics listener binds loopback by default')
  const open = await build(t, { worker: false, env: { AIRLOCK_METRICS_ON_API_PORT: 'true' } })
  const served = await open.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(served.statusCode, 200)
  t.match(served.body, /airlock_queue_depth/)
})

t.test(
  'the OpenAPI document lists every route once, by its canonical path, with its schemas, ids and credentials',
  async (t) => {
    const h = await build(t, { worker: false })
    const res = await h.app.inject({ method: 'GET', url: '/docs/json' })
    t.equal(res.statusCode, 200)
    type Op = {
      operationId?: string
      security?: unknown[]
      requestBody?: unknown
      parameters?: unknown[]
      responses: Record<string, { content?: Record<string, unknown> }>
    }
    const doc = res.json<{
      openapi: string
      servers: unknown[]
      security: unknown[]
      paths: Record<string, Record<string, Op>>
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> }
    }>()
    t.equal(doc.openapi, '3.1.0')
    t.ok(doc.servers.length > 0, 'it names its server')
    t.same(Object.keys(doc.components.securitySchemes).sort(), ['adminKey', 'streamToken', 'tenantKey'])
    const expected = [
      'get /healthz',
      'get /readyz',
      'post /v1/jobs',
      'post /v1/jobs/batch',
      'get /v1/jobs',
      'get /v1/jobs/{id}',
      'delete /v1/jobs/{id}',
      'get /v1/jobs/{id}/stream',
      'post /v1/jobs/{id}/stream-tokens',
      'get /v1/jobs/{id}/logs',
      'get /v1/jobs/{id}/artifacts/{path}',
      'get /v1/jobs/{id}/request',
      'get /v1/runtimes',
      'get /v1/admin/queue',
      'get /v1/admin/usage',
      'get /v1/admin/metrics',
      'get /v1/audit',
      'post /v1/admin/tenants',
      'get /v1/admin/tenants',
      'get /v1/admin/tenants/{name}',
      'put /v1/admin/tenants/{name}/quotas',
      'post /v1/admin/tenants/{name}/keys',
      'delete /v1/admin/tenants/{name}/keys/{keyId}',
      'get /v1/admin/tenants/{name}/audit',
    ]
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`))
    t.same([...listed].sort(), [...expected].sort())
    t.equal(operationIdProblems(doc).length, 0, 'every operation has its own operationId')
    const text = JSON.stringify(doc.paths)
    t.notMatch(text, /"title":/, 'every named schema is a component, referenced from the paths')
    t.ok(doc.components.schemas.ErrorResponse && doc.components.schemas.Job && doc.components.schemas.JobStatus)
    t.equal(text.match(/"statusCode"/g), null, 'the error schema is written once, in components')
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        t.ok(
          Object.values(op.responses).some((r) => r.content),
          `${method} ${path} documents a response schema`,
        )
        if (/\{(id|name)\}/.test(path))
          t.ok(op.parameters?.length && op.responses['414'], `${method} ${path} documents its parameters and 414`)
        const admin = path.startsWith('/v1/admin')
        if (admin) t.same(op.security, [{ adminKey: [] }], `${method} ${path} needs the admin key`)
        const tenantKey = op.security === undefined || JSON.stringify(op.security).includes('tenantKey')
        if (!admin && path.startsWith('/v1'))
          t.ok(tenantKey && op.responses['401'], `${method} ${path} takes a tenant key and says 401`)
      }
    }
    t.ok(doc.paths['/v1/jobs']?.post?.requestBody, 'POST /v1/jobs documents its body')
    t.ok(doc.paths['/v1/jobs']?.post?.responses['400']?.content, 'and its 400 error')
    t.same(
      Object.keys(doc.paths['/v1/jobs/{id}/logs']!.get!.responses['200']!.content!).sort(),
      ['application/x-ndjson', 'text/plain'],
      'the log is text or NDJSON, not JSON',
    )
    const stream = doc.paths['/v1/jobs/{id}/stream']!.get!.responses
    t.ok(stream['101'] && stream['426'], 'the WebSocket documents its upgrade and 426')
    const ui = await h.app.inject({ method: 'GET', url: '/docs/' })
    t.equal(ui.statusCode, 200)
    t.match(ui.body, /swagger/i)
    // The docs share the console's origin, where the keys are kept.
    for (const url of ['/docs/', '/docs/static/oauth2-redirect.html', '/docs/static/swagger-initializer.js']) {
      const page = await h.app.inject({ method: 'GET', url })
      t.equal(page.statusCode, 200, url)
      t.match(page.headers, { 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff' }, url)
      const csp = String(page.headers['content-security-policy'])
      t.match(csp, /frame-ancestors 'none'/, `${url}: never framed`)
      t.match(csp, /script-src 'self'/, `${url}: its own scripts`)
      t.notMatch(csp, /https:|validator\.swagger\.io|upgrade-insecure-requests/, `${url}: nothing from elsewhere`)
    }
  },
)

t.test('the stream route asked for without an upgrade answers 426 and says how', async (t) => {
  const h = await build(t, { worker: false })
  const { id } = (await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).json<{ id: string }>()
  const res = await h.request('GET', `/v1/jobs/${id}/stream`)
  t.equal(res.statusCode, 426)
  t.equal(res.json().code, 'AIRLOCK_ERR_UPGRADE_REQUIRED')
  t.equal(res.headers.upgrade, 'websocket')
  const other = await h.request('GET', `/v1/jobs/${id}/stream`, undefined, 'bob')
  t.equal(other.statusCode, 404, "another tenant's job is still not found, before the upgrade is looked at")
})

t.test('the admin queue endpoint needs the admin key, not a tenant key', async (t) => {
  const h = await build(t, { worker: false, env: { AIRLOCK_ADMIN_KEY: 'admin-key-for-tests-0001' } })
  const asTenant = await h.request('GET', '/v1/admin/queue')
  t.equal(asTenant.statusCode, 401)
  // Submitted by an API whose host clock is 10 minutes slow: the queue's age is on the
  // deployment's clock (bullmq dated the entry by the host's, and it read 10 minutes old).
  const realNow = Date.now
  Date.now = () => realNow() - 10 * 60_000
  try {
    t.equal((await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).statusCode, 202)
  } finally {
    Date.now = realNow
  }
  const res = await h.app.inject({
    method: 'GET',
    url: '/v1/admin/queue',
    headers: { authorization: 'Bearer admin-key-for-tests-0001' },
  })
  t.equal(res.statusCode, 200)
  const body = res.json<{ counts: Record<string, number>; oldestQueuedAgeMs: number | null }>()
  t.equal(body.counts.waiting, 1, 'the queued job is counted (no worker runs here)')
  t.ok(
    body.oldestQueuedAgeMs !== null && body.oldestQueuedAgeMs >= 0 && body.oldestQueuedAgeMs < 60_000,
    `its age (${body.oldestQueuedAgeMs} ms), whatever the submitting host's clock`,
  )
  const metrics = await h.metrics.registry.metrics()
  t.equal(sample(metrics, 'airlock_queue_depth', { state: 'waiting' }), 1)
  const age = sample(metrics, 'airlock_queue_oldest_age_seconds', {})
  t.ok(age !== undefined && age >= 0 && age < 60, `and the gauge (${age} s)`)
})

t.test('readyz goes not-ready while Redis is down and ready again after', async (t) => {
  const redis = await startRedis()
  t.teardown(() => void redis.process.kill('SIGKILL'))
  const { lines, sink } = logLines()
  const h = await build(t, { worker: false, env: {}, redisUrl: redis.url, logStream: sink })
  const ready = () => h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal((await ready()).statusCode, 200)
  redis.process.kill('SIGKILL')
  await exited(redis.process)
  const down = await until(ready, (r) => r.statusCode === 503, 10_000, 'readyz 503')
  t.equal(down.json().checks.redis, 'unreachable', "naming neither Redis's address nor its error: the log has them")
  const submit = await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })
  t.equal(submit.statusCode, 503, 'submissions get 503 while Redis is down')
  t.equal(submit.json().code, 'AIRLOCK_ERR_STORE_UNAVAILABLE')
  // Every request fails alike while the store is down, at its callers' rate: its error is
  // logged once a second, not a stack per request.
  const started = performance.now()
  const flood = await Promise.all(
    Array.from({ length: 40 }, () => h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })),
  )
  const seconds = Math.ceil((performance.now() - started) / 1000)
  t.same(new Set(flood.map((r) => r.statusCode)), new Set([503]), '40 more submits: 503 each')
  const logged = lines.filter((l) => l.includes('request failed'))
  t.ok(logged.length >= 1, 'the store being down is logged')
  t.ok(logged.length <= seconds + 1, `once a second (${logged.length} lines for 41 requests in ${seconds} s)`)
  const again = await startRedis(redis.port)
  t.teardown(() => void again.process.kill('SIGKILL'))
  await until(ready, (r) => r.statusCode === 200, 20_000, 'readyz 200 after Redis is back')
  t.pass('ready again once Redis is back')
})

t.test('while Redis stalls, connected but not answering, requests get 503 with a code, not a wait', async (t) => {
  // Found by review 16: with Redis paused, a submit answered after the pause (30 s), or
  // never before its client gave up.
  const redis = await startRedis()
  t.teardown(() => void redis.process.kill('SIGKILL'))
  const h = await build(t, { worker: false, redisUrl: redis.url })
  const { id } = (await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).json<{ id: string }>()
  const admin = new Redis(redis.url)
  t.teardown(async () => {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined)
    admin.disconnect()
  })
  await admin.call('CLIENT', 'PAUSE', '30000', 'ALL')
  const t0 = Date.now()
  const [submit, read] = await Promise.all([
    h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' }),
    h.request('GET', `/v1/jobs/${id}`),
  ])
  const tookMs = Date.now() - t0
  for (const [what, res] of [
    ['a submit', submit],
    ['a read', read],
  ] as const) {
    t.equal(res.statusCode, 503, `${what}: 503`)
    t.equal(res.json().code, 'AIRLOCK_ERR_STORE_UNAVAILABLE', `${what}: with its code`)
  }
  t.ok(tookMs < 15_000, `answered in ${tookMs} ms, inside the 30 s pause`)
  await admin.call('CLIENT', 'UNPAUSE')
  t.equal((await h.request('GET', `/v1/jobs/${id}`)).statusCode, 200, 'and answered again once Redis is')
})

t.test('a job whose end Redis refused (full) ends once Redis takes writes again', async (t) => {
  // Found by review 16: the end was tried once; refused (OOM under noeviction), the job
  // stayed running under its live worker, which no sweep takes for lost.
  const redis = await startRedis()
  t.teardown(() => void redis.process.kill('SIGKILL'))
  const h = await build(t, { redisUrl: redis.url })
  const admin = new Redis(redis.url)
  t.teardown(async () => {
    await admin.config('SET', 'maxmemory', '0').catch(() => undefined)
    admin.disconnect()
  })
  const { id } = (
    await h.request('POST', '/v1/jobs', {
      runtime: 'bash',
      source: 'sleep 1; echo done',
      limits: { timeoutMs: 20_000 },
    })
  ).json<{ id: string }>()
  await h.poll(id, (j: Job) => j.status === 'running' && j.startedAt !== null)
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', '1')
  // The program ends meanwhile, and its end is refused.
  await new Promise((resolve) => setTimeout(resolve, 3000))
  t.equal((await h.request('GET', `/v1/jobs/${id}`)).json<Job>().status, 'running', 'not ended while Redis is full')
  await admin.config('SET', 'maxmemory', '0')
  const job = await h.poll(id, (j: Job) => j.status !== 'running', 20_000)
  t.match(job, { status: 'succeeded', stdout: 'done\n' }, 'ended with its result once Redis takes writes')
})

t.test('readyz goes not-ready while runsc is unusable and ready again after; jobs are refused meanwhile', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-runsc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const runsc = join(dir, 'runsc')
  // The runsc a worker uses by default; through a symlink it still finds its gvisor-bin/ sidecar.
  const real = loadConfig({}).runscPath
  await symlink(real, runsc)
  const h = await build(t, { env: { AIRLOCK_RUNSC_PATH: runsc, AIRLOCK_ISOLATION_CHECK_INTERVAL_MS: '300' } })
  const ready = () => h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal((await ready()).statusCode, 200)

  await unlink(runsc)
  await writeFile(runsc, '#!/bin/sh\necho "runsc is broken" >&2\nexit 1\n', { mode: 0o755 })
  const broken = await until(ready, (r) => r.statusCode === 503, 15_000, 'readyz 503')
  t.match(broken.json().checks.isolation, /no worker can isolate jobs/)
  const refused = await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })
  t.equal(refused.statusCode, 503)
  t.equal(refused.json().code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')

  await unlink(runsc)
  await symlink(real, runsc)
  await until(ready, (r) => r.statusCode === 200, 15_000, 'readyz 200 after runsc is back')
  const job = await h.run({ runtime: 'bash', source: 'echo back' })
  t.match(job, { status: 'succeeded', stdout: 'back\n' })
})

t.test('SIGTERM during a running job loses nothing and runs nothing twice', async (t) => {
  const h = await build(t, { worker: false })
  const env = workerEnv(h.config, 'w')
  const source = 'import time\nprint("start", flush=True)\ntime.sleep(3)\nprint("done", flush=True)'
  const runningOn = async (id: string) => h.poll(id, (j: Job) => j.status === 'running' && j.startedAt !== null)
  const logOf = async (id: string) => (await h.request('GET', `/v1/jobs/${id}/logs`)).body
  const statuses = async (id: string) =>
    (
      await h.app.inject({
        method: 'GET',
        url: `/v1/jobs/${id}/logs`,
        headers: { authorization: `Bearer ${TENANTS.alice}`, accept: 'application/x-ndjson' },
      })
    ).body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; status?: string })
      .filter((e) => e.type === 'status')
      .map((e) => e.status)

  t.test('within the grace period the running job finishes', async (t) => {
    const worker = startAirlock('worker', { ...env, AIRLOCK_SHUTDOWN_GRACE_MS: '30000' })
    t.teardown(() => void worker.kill('SIGKILL'))
    const { id } = (
      await h.request('POST', '/v1/jobs', { runtime: 'python', source, limits: { timeoutMs: 30_000 } })
    ).json<{ id: string }>()
    await runningOn(id)
    await until(
      () => logOf(id),
      (l) => l.includes('start'),
      10_000,
      'the program to start',
    )
    worker.kill('SIGTERM')
    t.equal(await exited(worker), 0, 'the worker exits cleanly')
    const job = (await h.request('GET', `/v1/jobs/${id}`)).json<Job>()
    t.match(job, { status: 'succeeded', stdout: 'start\ndone\n' })
    t.same(await statuses(id), ['queued', 'running', 'succeeded'])
  })

  t.test('past the grace period a job whose program started ends as error and is not run again', async (t) => {
    // Found by review 16: the job was handed back to the queue and another worker started
    // its program a second time (the first run had printed "start"): at most once comes
    // first. Only a job not launched yet goes back to the queue.
    const first = startAirlock('worker', { ...env, AIRLOCK_SHUTDOWN_GRACE_MS: '300' })
    t.teardown(() => void first.kill('SIGKILL'))
    const { id } = (
      await h.request('POST', '/v1/jobs', { runtime: 'python', source, limits: { timeoutMs: 30_000 } })
    ).json<{ id: string }>()
    await runningOn(id)
    await until(
      () => logOf(id),
      (l) => l.includes('start'),
      10_000,
      'the program to start',
    )
    first.kill('SIGTERM')
    t.equal(await exited(first), 0, 'the worker exits cleanly')
    const ended = (await h.request('GET', `/v1/jobs/${id}`)).json<Job>()
    t.match(ended, { status: 'error', reason: REASONS.workerLost }, 'ended, with why')
    t.match(ended.stdout, /^start\n/, 'with the output it had made')

    const second = startAirlock('worker', { ...env, AIRLOCK_SHUTDOWN_GRACE_MS: '30000' })
    t.teardown(async () => {
      second.kill('SIGTERM')
      await exited(second)
    })
    await new Promise((resolve) => setTimeout(resolve, 3000))
    t.match(
      (await h.request('GET', `/v1/jobs/${id}`)).json<Job>(),
      { status: 'error' },
      'another worker does not take it',
    )
    t.same(await statuses(id), ['queued', 'running', 'error'])
    const log = await logOf(id)
    t.equal(log.split('start').length - 1, 1, 'the program started once')
  })
})

/** A log destination that keeps its lines. */
function logLines() {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    },
  })
  return { lines, sink }
}

t.test('logs carry request id, tenant and job id, and never source, stdin, output or keys', async (t) => {
  const { lines, sink } = logLines()
  const h = await build(t, { logStream: sink })
  const secret = 'SOURCE-SECRET-7f3a'
  const job = await h.run({
    runtime: 'python',
    source: `import sys\n# ${secret}\nprint("OUTPUT-SECRET-" + sys.stdin.read())`,
    stdin: 'STDIN-SECRET-91b2',
  })
  t.equal(job.stdout, 'OUTPUT-SECRET-STDIN-SECRET-91b2\n')
  const token = (await h.request('POST', `/v1/jobs/${job.id}/stream-tokens`)).json<{ token: string }>().token
  await h.app.inject({ method: 'GET', url: `/v1/jobs/${job.id}/logs?token=${token}` })
  await new Promise((r) => setTimeout(r, 100))
  const all = lines.join('\n')
  for (const leak of [secret, 'OUTPUT-SECRET', 'STDIN-SECRET', TENANTS.alice, token])
    t.notOk(all.includes(leak), `${leak.slice(0, 12)}... never logged`)
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  const accepted = parsed.find((l) => l.msg === 'job accepted')
  t.match(accepted, { tenant: 'alice', jobId: job.id, reqId: /.+/ })
  const finished = parsed.find((l) => l.msg === 'job finished')
  t.match(finished, { tenant: 'alice', jobId: job.id, status: 'succeeded' })
  const completed = parsed.filter((l) => l.msg === 'request completed' && l.tenant === 'alice')
  t.ok(completed.length > 0, 'request lines carry the tenant')
})

t.test('the server refuses arguments it does not know, and starts nothing', async (t) => {
  // Found by review 16: `--help` (any argument but --role) started a whole server with
  // the default settings, listening on 0.0.0.0:8080 against the default Redis.
  const server = (...args: string[]) =>
    spawnSync(process.execPath, [SERVER_JS, ...args], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { PATH: process.env.PATH ?? '', REDIS_URL: 'redis://127.0.0.1:9' },
    })
  const help = server('--help')
  t.equal(help.status, 0, '--help exits')
  t.match(help.stdout, /usage: airlock-server \[--role=all\|api\|worker\]/)
  for (const args of [['--bogus'], ['extra'], ['--role=nope'], ['-x']]) {
    const refused = server(...args)
    t.equal(refused.status, 2, `${args.join(' ')}: exit 2, not a server`)
    t.match(refused.stderr, /usage|unknown --role/, `${args.join(' ')}: says why`)
  }
})

t.test("a job's file names are logged cut short, ten at most", async (t) => {
  // Found by review 18: the names of artifacts left behind were logged whole, so a job's
  // long names made a line of kilobytes in the worker's log for every job.
  const { lines, sink } = logLines()
  const h = await build(t, { logStream: sink, env: { AIRLOCK_ARTIFACT_BYTES: String(64 * 1024) } })
  const job = await h.run({
    runtime: 'python',
    // Names that are not UTF-8 are left behind, 200 bytes each.
    source:
      'import os\nfor i in range(12):\n    open(b"/workspace/out/" + bytes([0xff]) * 197 + b"%03d" % i, "w").close()',
  })
  t.equal(job.status, 'succeeded')
  await new Promise((r) => setTimeout(r, 100))
  const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => Array.isArray(l.skipped))
  t.ok(line, 'the names left behind are logged')
  const skipped = (line?.skipped ?? []) as string[]
  t.equal(skipped.length, 10, 'ten of them')
  t.equal(line?.count, 12, 'and how many there were')
  t.ok(
    skipped.every((name) => name.length <= 101),
    `each cut short: ${skipped.map((n) => n.length).join(', ')} characters`,
  )
})
