import t from 'tap'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { build, TENANTS } from '../helper.js'

const ADMIN_KEY = 'admin-key-for-tests-0001'
// Two API replicas on one Redis prefix, as behind a load balancer.
const prefix = `test-tenants-${randomBytes(4).toString('hex')}`
const env = { AIRLOCK_ADMIN_KEY: ADMIN_KEY, AIRLOCK_REDIS_PREFIX: prefix }
const a = await build(t, { worker: false, env })
const b = await build(t, { worker: false, env })

const admin = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, key = ADMIN_KEY) =>
  a.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  })
const as = (h: typeof a, key: string, method: 'GET' | 'POST', url: string, body?: unknown) =>
  h.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  })

async function tenantWithKey(
  name: string,
  quotas: Record<string, number> = {},
  role = 'member',
): Promise<{ key: string; keyId: string }> {
  const created = await admin('POST', '/v1/admin/tenants', { name, quotas })
  t.equal(created.statusCode, 201)
  t.equal(created.headers.location, `/v1/admin/tenants/${name}`, 'Location of the created tenant')
  const issued = await admin('POST', `/v1/admin/tenants/${name}/keys`, { role })
  t.equal(issued.statusCode, 201)
  const { key, info } = issued.json<{ key: string; info: { keyId: string } }>()
  return { key, keyId: info.keyId }
}

t.test(
  'a key issued through the admin API works on every replica; revoked, it gets 401 at once on every replica',
  async (t) => {
    const { key, keyId } = await tenantWithKey('carol')
    t.match(key, /^ak_[A-Za-z0-9_-]{32}$/)
    t.equal((await as(a, key, 'GET', '/v1/jobs')).statusCode, 200)
    t.equal((await as(b, key, 'GET', '/v1/jobs')).statusCode, 200)
    const shown = (await admin('GET', '/v1/admin/tenants/carol')).json<{ keys: { keyId: string; prefix: string }[] }>()
    t.same(
      shown.keys.map((k) => k.keyId),
      [keyId],
    )
    t.notMatch(JSON.stringify(shown), key, 'the key itself is never shown again')
    t.equal((await admin('DELETE', `/v1/admin/tenants/carol/keys/${keyId}`)).statusCode, 204)
    for (const h of [a, b]) {
      const res = await as(h, key, 'GET', '/v1/jobs')
      t.equal(res.statusCode, 401)
      t.equal(res.json().code, 'AIRLOCK_ERR_UNAUTHORIZED')
    }
    t.equal((await admin('DELETE', `/v1/admin/tenants/carol/keys/${keyId}`)).statusCode, 404, 'a key is revoked once')
  },
)

t.test(
  'a stream token is worth no more than the key that asked for it: revoked, the token opens nothing',
  async (t) => {
    const { key, keyId } = await tenantWithKey('tess')
    const job = (await as(a, key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).json<{ id: string }>().id
    const token = async () =>
      (await as(a, key, 'POST', `/v1/jobs/${job}/stream-tokens`)).json<{ token: string }>().token
    const open = (h: typeof a, tok: string) =>
      h.app.inject({ method: 'GET', url: `/v1/jobs/${job}/stream?token=${tok}` })
    const live = await open(b, await token())
    t.equal(live.statusCode, 426, 'a token of a live key passes authentication (a plain GET then asks for an upgrade)')
    const kept = await token()
    t.equal((await admin('DELETE', `/v1/admin/tenants/tess/keys/${keyId}`)).statusCode, 204)
    const revoked = await open(b, kept)
    t.equal(revoked.statusCode, 401, 'issued before the revocation, redeemed after it')
    t.match(revoked.json(), { code: 'AIRLOCK_ERR_UNAUTHORIZED', message: /revoked/ })
  },
)

t.test('an open stream is worth no more than the key that opened it: revoked, it is closed with 4401', async (t) => {
  const c = await build(t, { worker: false, listen: true, env, streamLimits: { pollMs: 50, keyCheckMs: 100 } })
  const { key, keyId } = await tenantWithKey('opal')
  const submit = async (k: string) =>
    (await as(c, k, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).json<{ id: string }>().id
  const [job, aliceJob] = [await submit(key), await submit(TENANTS.alice)]
  const token = (await as(c, key, 'POST', `/v1/jobs/${job}/stream-tokens`)).json<{ token: string }>().token
  const ws = (id: string, query: string, headers: Record<string, string> = {}) => {
    const socket = new WebSocket(`${c.baseUrl.replace('http', 'ws')}/v1/jobs/${id}/stream${query}`, { headers })
    t.teardown(() => socket.terminate())
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
    const opened = new Promise<boolean>((resolve) => {
      socket.on('open', () => resolve(true))
      socket.on('unexpected-response', () => resolve(false))
    })
    return { opened, closed }
  }
  const byKey = ws(job, '', { authorization: `Bearer ${key}` })
  const byToken = ws(job, `?token=${token}`)
  const other = ws(aliceJob, '', { authorization: `Bearer ${TENANTS.alice}` })
  t.same(await Promise.all([byKey.opened, byToken.opened, other.opened]), [true, true, true])
  // Open and queued (no worker takes it): nothing ends these streams but the revocation.
  await new Promise((r) => setTimeout(r, 300))
  t.equal((await admin('DELETE', `/v1/admin/tenants/opal/keys/${keyId}`)).statusCode, 204)
  const timeout = new Promise<string>((r) => setTimeout(() => r('still open'), 5000).unref())
  t.equal(await Promise.race([byKey.closed, timeout]), 4401, 'the stream opened with the key is closed')
  t.equal(await Promise.race([byToken.closed, timeout]), 4401, 'and the one opened with its token')
  t.equal(
    await Promise.race([other.closed, new Promise((r) => setTimeout(() => r('still open'), 300))]),
    'still open',
    "another tenant's stream goes on",
  )
})

t.test('a request held open for its job is worth no more than its key: revoked meanwhile, it gets 401', async (t) => {
  const { key, keyId } = await tenantWithKey('otto')
  const other = (await admin('POST', '/v1/admin/tenants/otto/keys', {})).json<{ key: string }>().key
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
  const body = JSON.stringify({ runtime: 'bash', source: 'echo otto-secret' })
  // No worker takes them: they end when the tenant's other key cancels them.
  const waits = [
    a.app.inject({ method: 'POST', url: '/v1/jobs?wait=true', headers, payload: body }),
    a.app.inject({
      method: 'POST',
      url: '/judge0/submissions?wait=true',
      headers,
      payload: JSON.stringify({ language_id: 46, source_code: 'echo otto-secret' }),
    }),
  ]
  let ids: string[] = []
  for (let i = 0; i < 50 && ids.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 100))
    ids = (await as(a, other, 'GET', '/v1/jobs')).json<{ items: { id: string }[] }>().items.map((j) => j.id)
  }
  t.equal(ids.length, 2, 'both jobs are queued, their requests held')
  t.equal((await admin('DELETE', `/v1/admin/tenants/otto/keys/${keyId}`)).statusCode, 204)
  for (const id of ids)
    t.equal(
      (await a.app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: { authorization: `Bearer ${other}` } }))
        .statusCode,
      202,
    )
  const [v1, judge0] = await Promise.all(waits)
  t.equal(v1!.statusCode, 401, 'the v1 wait ends in 401, not the job')
  t.equal(v1!.json().code, 'AIRLOCK_ERR_UNAUTHORIZED')
  t.equal(judge0!.statusCode, 401, "and Judge0's")
  for (const answer of [v1!, judge0!]) t.notMatch(answer.body, /otto-secret|cancelled/, 'nothing of the job in it')
  const still = await as(a, other, 'GET', `/v1/jobs/${ids[0]}`)
  t.equal(still.json().status, 'cancelled', 'the job is read with a key that stands')
})

t.test("a stream's end, which carries the whole job, goes only to a key that stands when it is sent", async (t) => {
  // The periodic check is far off: only the check at the end can stop it.
  const c = await build(t, { worker: false, listen: true, env, streamLimits: { pollMs: 50, keyCheckMs: 600_000 } })
  const { key, keyId } = await tenantWithKey('pia')
  const other = (await admin('POST', '/v1/admin/tenants/pia/keys', {})).json<{ key: string }>().key
  const job = (await as(c, key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'echo pia-secret' })).json<{
    id: string
  }>().id
  const socket = new WebSocket(`${c.baseUrl.replace('http', 'ws')}/v1/jobs/${job}/stream`, {
    headers: { authorization: `Bearer ${key}` },
  })
  t.teardown(() => socket.terminate())
  const messages: string[] = []
  socket.on('message', (m) => messages.push(String(m)))
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
  await new Promise((resolve) => socket.on('open', resolve))
  t.equal((await admin('DELETE', `/v1/admin/tenants/pia/keys/${keyId}`)).statusCode, 204)
  const cancel = await c.app.inject({
    method: 'DELETE',
    url: `/v1/jobs/${job}`,
    headers: { authorization: `Bearer ${other}` },
  })
  t.equal(cancel.statusCode, 202, 'the job ends (cancelled by the key that stands)')
  t.equal(await closed, 4401, 'the stream of the revoked key is closed with 4401')
  t.notOk(
    messages.some((m) => m.includes('"type":"end"')),
    'without the end message and its job',
  )
})

t.test('several keys per tenant (rotation): the old one revoked, the new one still works', async (t) => {
  const first = await tenantWithKey('dave')
  const second = (await admin('POST', '/v1/admin/tenants/dave/keys', {})).json<{ key: string }>().key
  await admin('DELETE', `/v1/admin/tenants/dave/keys/${first.keyId}`)
  t.equal((await as(b, first.key, 'GET', '/v1/jobs')).statusCode, 401)
  t.equal((await as(b, second, 'GET', '/v1/jobs')).statusCode, 200)
})

t.test("a tenant cannot read, stream, cancel or list another tenant's jobs", async (t) => {
  const erin = await tenantWithKey('erin')
  const created = await as(a, erin.key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })
  t.equal(created.statusCode, 202)
  const { id } = created.json<{ id: string }>()
  const other = TENANTS.bob
  t.equal((await as(a, other, 'GET', `/v1/jobs/${id}`)).statusCode, 404)
  t.equal((await as(a, other, 'GET', `/v1/jobs/${id}/logs`)).statusCode, 404)
  t.equal((await as(a, other, 'POST', `/v1/jobs/${id}/stream-tokens`)).statusCode, 404)
  t.equal(
    (await a.app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: { authorization: `Bearer ${other}` } }))
      .statusCode,
    404,
  )
  t.notOk((await as(a, other, 'GET', '/v1/jobs')).json<{ items: { id: string }[] }>().items.some((j) => j.id === id))
  t.ok(
    (await as(b, erin.key, 'GET', '/v1/jobs')).json<{ items: { id: string }[] }>().items.some((j) => j.id === id),
    'its own tenant lists it',
  )
})

t.test(
  'quotas: submissions per second (429 with Retry-After, across replicas) and per-job limits (400), each with its code',
  async (t) => {
    const frank = await tenantWithKey('frank', { submitsPerSecond: 2, maxMemoryMb: 128 })
    // Wait for the start of a second, so three submissions fall into one window.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20))
    const codes = [
      (await as(a, frank.key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).statusCode,
      (await as(b, frank.key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).statusCode,
    ]
    const third = await as(a, frank.key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })
    t.same(codes, [202, 202])
    t.equal(third.statusCode, 429)
    t.equal(third.json().code, 'AIRLOCK_ERR_QUOTA_RATE')
    t.equal(third.headers['retry-after'], '1')
    const big = await as(b, frank.key, 'POST', '/v1/jobs', {
      runtime: 'bash',
      source: 'true',
      limits: { memoryMb: 256 },
    })
    t.equal(big.statusCode, 400)
    t.equal(big.json().code, 'AIRLOCK_ERR_QUOTA_JOB_LIMITS')
    t.same(big.json().details, [{ path: '/limits/memoryMb', message: "256 is above this tenant's quota of 128" }])
    t.equal((await admin('PUT', '/v1/admin/tenants/frank/quotas', { maxMemoryMb: 512 })).statusCode, 200)
    await new Promise((r) => setTimeout(r, 1000))
    t.equal(
      (await as(b, frank.key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true', limits: { memoryMb: 256 } }))
        .statusCode,
      202,
      'a raised quota applies at once',
    )
  },
)

t.test(
  'a static tenant (AIRLOCK_API_KEYS) is no new name for the admin API: not made again, but its quotas and keys are set',
  async (t) => {
    const made = await admin('POST', '/v1/admin/tenants', { name: 'bob', quotas: { maxQueued: 5 } })
    t.equal(made.statusCode, 409, "making a tenant by a static one's name would hand it that tenant's jobs")
    t.equal(made.json().code, 'AIRLOCK_ERR_TENANT_EXISTS')
    t.match(made.json().message, /AIRLOCK_API_KEYS/)
    t.ok((await admin('GET', '/v1/admin/tenants')).json<{ tenants: string[] }>().tenants.includes('bob'), 'listed')
    const shown = await admin('GET', '/v1/admin/tenants/bob')
    t.equal(shown.statusCode, 200, 'and shown')
    t.same(shown.json().quotas, {}, 'without quotas of its own: the defaults hold')
    t.equal((await admin('PUT', '/v1/admin/tenants/bob/quotas', { maxMemoryMb: 128 })).statusCode, 200)
    const refused = await as(a, TENANTS.bob, 'POST', '/v1/jobs', {
      runtime: 'bash',
      source: 'true',
      limits: { memoryMb: 256 },
    })
    t.equal(
      refused.json().code,
      'AIRLOCK_ERR_QUOTA_JOB_LIMITS',
      'its quota set by the admin API holds for its static key',
    )
    const usage = (await admin('GET', '/v1/admin/usage')).json<{
      tenants: { name: string; source: string; quotas: object }[]
    }>()
    t.match(
      usage.tenants.find((x) => x.name === 'bob'),
      { source: 'static', quotas: { maxMemoryMb: 128 } },
    )
    const audit = (await admin('GET', '/v1/admin/tenants/bob/audit')).json<{ entries: { action: string }[] }>()
    t.same(
      audit.entries.map((e) => e.action).reverse(),
      ['tenant.adopted', 'quotas.set'],
      'its record was made once, when the admin API first acted on it, and audited',
    )
    t.equal((await admin('PUT', '/v1/admin/tenants/bob/quotas', {})).statusCode, 200)
  },
)

t.test('the admin API refuses tenant keys, and tenant routes refuse the admin key', async (t) => {
  const gina = await tenantWithKey('gina', {}, 'admin')
  for (const key of [gina.key, TENANTS.alice]) {
    const res = await admin('GET', '/v1/admin/tenants', undefined, key)
    t.equal(res.statusCode, 401)
  }
  t.equal((await as(a, ADMIN_KEY, 'GET', '/v1/jobs')).statusCode, 401)
  t.equal((await admin('POST', '/v1/admin/tenants', { name: 'gina' })).json().code, 'AIRLOCK_ERR_TENANT_EXISTS')
  t.equal((await admin('POST', '/v1/admin/tenants', { name: '../etc' })).statusCode, 400)
  t.equal((await admin('PUT', '/v1/admin/tenants/nobody/quotas', {})).statusCode, 404)
  // Numbers past what JSON carries exactly, or past any machine, are refused rather than stored as floats.
  for (const quotas of [{ maxRunning: 1.3e32 }, { maxStoredBytes: 2 ** 53 }, { maxCpus: 1e6 }, { maxRunning: 1.5 }]) {
    const res = await admin('PUT', '/v1/admin/tenants/gina/quotas', quotas)
    t.equal(res.statusCode, 400, JSON.stringify(quotas))
    t.equal(res.json().code, 'AIRLOCK_ERR_VALIDATION')
  }
  const exact = await admin('PUT', '/v1/admin/tenants/gina/quotas', {
    maxStoredBytes: Number.MAX_SAFE_INTEGER,
    maxCpus: 1.5,
  })
  t.equal(exact.statusCode, 200)
  t.match(
    exact.json().quotas,
    { maxStoredBytes: Number.MAX_SAFE_INTEGER, maxCpus: 1.5 },
    'the largest exact count comes back as it was sent',
  )
})

t.test("an audit trail of admin actions and key use, readable by the tenant's admins only", async (t) => {
  const { key: member } = await tenantWithKey('hank')
  const adminKey = (await admin('POST', '/v1/admin/tenants/hank/keys', { role: 'admin' })).json<{
    key: string
    info: { keyId: string }
  }>()
  await as(a, member, 'GET', '/v1/jobs')
  t.equal((await as(a, member, 'GET', '/v1/audit')).statusCode, 403, 'a member key may not read it')
  const res = await as(b, adminKey.key, 'GET', '/v1/audit')
  t.equal(res.statusCode, 200)
  const actions = res
    .json<{ entries: { actor: string; action: string; detail: string; at: string }[] }>()
    .entries.map((e) => `${e.actor} ${e.action}`)
  t.ok(actions.includes('admin tenant.created'))
  t.equal(actions.filter((a) => a === 'admin key.issued').length, 2)
  t.ok(
    actions.some((a) => / key\.used$/.test(a) && a.startsWith('key_')),
    'key use is recorded, by key id',
  )
  t.same((await admin('GET', '/v1/admin/tenants/hank/audit?limit=1')).json<{ entries: unknown[] }>().entries.length, 1)
})

t.test('quota of queued jobs: 429 with its code once reached; a cancel makes room', async (t) => {
  const { key } = await tenantWithKey('jill', { maxQueued: 2 })
  const ids: string[] = []
  for (let i = 0; i < 2; i++) {
    const res = await as(a, key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })
    t.equal(res.statusCode, 202)
    ids.push(res.json<{ id: string }>().id)
  }
  const over = await as(b, key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })
  t.equal(over.statusCode, 429)
  t.equal(over.json().code, 'AIRLOCK_ERR_QUOTA_QUEUED')
  t.ok(over.headers['retry-after'])
  t.equal(
    (await a.app.inject({ method: 'DELETE', url: `/v1/jobs/${ids[0]}`, headers: { authorization: `Bearer ${key}` } }))
      .statusCode,
    202,
  )
  t.equal(
    (await as(b, key, 'POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).statusCode,
    202,
    'room again after a cancel',
  )
})
