import t from 'tap'
import { keyedJobId, requestDigest } from '../../core/idempotency.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { build, loseTransactionAnswers, TENANTS, type Tenant } from '../helper.js'

// Idempotency-Key on POST /v1/jobs and /v1/jobs/batch, against the real Redis and queue:
// a request sent again with its key is the job it made, never a second one.
const ADMIN_KEY = 'idem-admin-key-0001'
const h = await build(t, { worker: false, env: { AIRLOCK_ADMIN_KEY: ADMIN_KEY, AIRLOCK_MAX_BATCH_JOBS: '8' } })

const submit = (body: unknown, key: string | undefined, options: { url?: string; bearer?: string } = {}) =>
  h.app.inject({
    method: 'POST',
    url: options.url ?? '/v1/jobs',
    headers: {
      authorization: `Bearer ${options.bearer ?? TENANTS.alice}`,
      'content-type': 'application/json',
      ...(key === undefined ? {} : { 'idempotency-key': key }),
    },
    payload: JSON.stringify(body),
  })

/** How many of the tenant's jobs are recorded, and how many of those the queue holds. */
async function jobsOf(tenant: Tenant | string, bearer: string = TENANTS[tenant as Tenant]): Promise<string[]> {
  const res = await h.app.inject({
    method: 'GET',
    url: '/v1/jobs?limit=100',
    headers: { authorization: `Bearer ${bearer}` },
  })
  return res.json<{ items: { id: string }[] }>().items.map((j) => j.id)
}

async function tenantWithKey(name: string, quotas: Record<string, number>): Promise<string> {
  const admin = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }
  const made = await h.app.inject({
    method: 'POST',
    url: '/v1/admin/tenants',
    headers: admin,
    payload: JSON.stringify({ name, quotas }),
  })
  t.equal(made.statusCode, 201)
  const key = await h.app.inject({
    method: 'POST',
    url: `/v1/admin/tenants/${name}/keys`,
    headers: admin,
    payload: JSON.stringify({ role: 'member' }),
  })
  return key.json().key
}

const JOB = { runtime: 'bash', source: 'echo once' }

t.test('the same request sent again with its key is the same job, queued once', async (t) => {
  const before = await jobsOf('alice')
  const first = await submit(JOB, 'order-1001')
  t.equal(first.statusCode, 202)
  t.equal(first.headers['idempotent-replayed'], undefined, 'the first answer is no replay')
  const { id } = first.json()
  for (let i = 0; i < 3; i++) {
    const again = await submit(JOB, 'order-1001')
    t.equal(again.statusCode, 202, 'the same answer')
    t.same(again.json(), { id, status: 'queued' }, 'for the same job')
    t.equal(again.headers['idempotent-replayed'], 'true', 'marked as a replay')
    t.equal(again.headers.location, `/v1/jobs/${id}`)
  }
  const after = await jobsOf('alice')
  t.same(
    after.filter((j) => !before.includes(j)),
    [id],
    'one job recorded',
  )
  t.ok(await h.app.services.queue.getJob(id), 'and queued')
  const other = await submit(JOB, 'order-1002')
  t.not(other.json().id, id, 'another key, another job')
  const none = [await submit(JOB, undefined), await submit(JOB, undefined)]
  t.not(none[0]!.json().id, none[1]!.json().id, 'without a key, every submit is a new job')
})

t.test('a key sent with another request is refused with 409, and its job stays as it was', async (t) => {
  const first = await submit(JOB, 'order-2001')
  t.equal(first.statusCode, 202)
  const other = await submit({ runtime: 'bash', source: 'echo twice' }, 'order-2001')
  t.equal(other.statusCode, 409)
  t.equal(other.json().code, 'AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED')
  t.match(other.json().message, /another request/)
  const job = await h.app.inject({
    method: 'GET',
    url: `/v1/jobs/${first.json().id}/request`,
    headers: { authorization: `Bearer ${TENANTS.alice}` },
  })
  t.match(JSON.stringify(job.json()), 'echo once', "the first request's job is untouched")
  const reordered = await submit({ source: 'echo once', runtime: 'bash' }, 'order-2001')
  t.equal(reordered.statusCode, 409, 'the same request means the same JSON: keys in another order are another')
})

t.test("tenants' keys are their own: the same key makes each tenant its own job", async (t) => {
  const alice = await submit(JOB, 'shared-key')
  const bob = await submit(JOB, 'shared-key', { bearer: TENANTS.bob })
  t.equal(alice.statusCode, 202)
  t.equal(bob.statusCode, 202, "bob's key is not alice's")
  t.not(alice.json().id, bob.json().id)
  t.equal(bob.headers['idempotent-replayed'], undefined)
  const read = await h.app.inject({
    method: 'GET',
    url: `/v1/jobs/${alice.json().id}`,
    headers: { authorization: `Bearer ${TENANTS.bob}` },
  })
  t.equal(read.statusCode, 404, "and bob cannot read alice's job through it")
})

t.test('requests with one key that arrive together make one job', async (t) => {
  const before = await jobsOf('alice')
  const answers = await Promise.all(Array.from({ length: 8 }, () => submit(JOB, 'together-1')))
  t.same(
    answers.map((a) => a.statusCode),
    Array(8).fill(202),
  )
  const ids = new Set(answers.map((a) => a.json().id))
  t.equal(ids.size, 1, 'every answer names the same job')
  t.equal(answers.filter((a) => a.headers['idempotent-replayed'] === undefined).length, 1, 'and one made it')
  const made = (await jobsOf('alice')).filter((j) => !before.includes(j))
  t.same(made, [...ids], 'one job recorded')
  const mixed = await Promise.all([submit(JOB, 'together-2'), submit({ runtime: 'bash', source: 'x' }, 'together-2')])
  t.same(
    mixed.map((a) => a.statusCode),
    [202, 409],
    'in one turn too, the second request with the key is refused',
  )
})

t.test('the create script makes one job of two racing creates, and refuses another request', async (t) => {
  // Two API processes that both found no job for the key go to create together.
  const { store } = h.app.services
  const spec = resolveJobSpec({ runtime: 'bash', source: 'true' }, h.config)
  const id = keyedJobId('alice', `race-${Date.now()}`)
  const digest = requestDigest(spec)
  const [made] = await store.createMany('alice', [{ id, spec, digest }], 1_000_000)
  t.same(made, { result: 'created' })
  const [again] = await store.createMany('alice', [{ id, spec, digest }], 1_000_000)
  t.same(again, { result: 'created' }, 'the same call sent again (a reconnect) is still created')
  const [racer] = await store.createMany('alice', [{ id, spec, digest }], 1_000_001)
  t.same(racer, { result: 'replay' }, "another create with the key's request is a replay")
  const [other] = await store.createMany('alice', [{ id, spec, digest: requestDigest({ other: 1 }) }], 1_000_002)
  t.same(other, { result: 'key-reused' }, 'with another request, refused')
  const [thief] = await store.createMany('bob', [{ id, spec, digest }], 1_000_003)
  t.type(thief, Error, "another tenant's create finds the id taken")
  t.ok((await store.withdraw(id, 'alice')) === 'withdrawn')
})

t.test('a replay is answered whatever the rate says, and a refused submit can be retried', async (t) => {
  const bearer = await tenantWithKey('idem-rate', { submitsPerSecond: 1 })
  const first = await submit(JOB, 'rate-1', { bearer })
  t.equal(first.statusCode, 202)
  // The rate's window is a second long and may turn between two requests: new jobs until one is refused.
  let refused: string | undefined
  for (let i = 0; i < 5 && !refused; i++) {
    const res = await submit(JOB, `rate-new-${i}`, { bearer })
    if (res.statusCode === 429) refused = `rate-new-${i}`
  }
  t.ok(refused, 'a new job over the rate is refused')
  const replay = await submit(JOB, 'rate-1', { bearer })
  t.equal(replay.statusCode, 202, 'the replay is not')
  t.equal(replay.json().id, first.json().id)
  // The refused one made nothing: sent again once the second has passed, it is made.
  await new Promise((r) => setTimeout(r, 1100))
  const retried = await submit(JOB, refused!, { bearer })
  t.equal(retried.statusCode, 202)
  t.equal(retried.headers['idempotent-replayed'], undefined, 'made now, not before')
  t.ok((await jobsOf('idem-rate', bearer)).includes(retried.json().id))
})

t.test('a batch sent again with its key makes only the jobs it did not make', async (t) => {
  const url = '/v1/jobs/batch'
  const jobs = [JOB, { runtime: 'cobol', source: 'x' }, { runtime: 'bash', source: 'echo b' }]
  const first = await submit({ jobs }, 'batch-1', { url })
  t.equal(first.statusCode, 200)
  const items = first.json().items
  t.same(
    items.map((i: { id?: string }) => typeof i.id),
    ['string', 'undefined', 'string'],
  )
  const again = await submit({ jobs }, 'batch-1', { url })
  t.same(
    again.json().items,
    [{ ...items[0], replayed: true }, items[1], { ...items[2], replayed: true }],
    'the same answer for each job, its made ones marked as replays',
  )
  const changed = await submit({ jobs: [JOB, { runtime: 'bash', source: 'echo c' }, JOB] }, 'batch-1', { url })
  const [same, fresh, other] = changed.json().items
  t.same(same, { ...items[0], replayed: true }, 'the job at place 0 is the one it made')
  t.equal(fresh.status, 'queued', 'place 1 made nothing before, so it makes its job now')
  t.not(fresh.id, undefined)
  t.equal(other.error.code, 'AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED', 'place 2 made another job with this key')
  t.equal(other.error.statusCode, 409)
  const single = await submit(JOB, 'batch-1')
  t.not(single.json().id, items[0].id, "a single submit's key is not a batch's")
})

t.test('an Idempotency-Key that is not one is refused with 400', async (t) => {
  for (const [what, key] of [
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['a space', 'order 1'],
    ['two keys', 'a, b'],
  ] as const) {
    const res = await submit(JOB, key)
    t.equal(res.statusCode, 400, what)
    t.equal(res.json().code, 'AIRLOCK_ERR_VALIDATION', what)
  }
  const longest = await submit(JOB, 'k'.repeat(255))
  t.equal(longest.statusCode, 202, '255 visible characters are a key')
  const batch = await submit({ jobs: [JOB] }, 'a b', { url: '/v1/jobs/batch' })
  t.equal(batch.statusCode, 400, 'on a batch too')
})

t.test(
  "a submit whose answer was lost takes back only its own job, never another request's with its key",
  async (t) => {
    // Found by review 23: R1 and its retry R2 carry one key; R2 read no job for it, R1's
    // create came first, and R2's transaction ran but its answer was lost. R2 then took
    // back the job at the key's id, which was R1's, answered 202: a job accepted, then lost.
    const { queue, store, submitRedis } = h.app.services
    const first = await submit(JOB, 'lost-answer-1')
    t.equal(first.statusCode, 202)
    const { id } = first.json()
    const queueMakers = store.queueMakers.bind(store)
    store.queueMakers = (pipeline, ids) => {
      const made = queueMakers(pipeline, ids)
      return { read: () => made.read().map(() => undefined) } // read before R1's create
    }
    const answers = loseTransactionAnswers(t, submitRedis)
    const restore = () => {
      store.queueMakers = queueMakers
      answers()
    }
    t.teardown(restore)
    const retry = await submit(JOB, 'lost-answer-1')
    restore()
    t.equal(retry.statusCode, 503, 'the retry whose answer was lost is told to retry')
    const read = await h.request('GET', `/v1/jobs/${id}`)
    t.equal(read.statusCode, 200, "R1's job is still there")
    t.equal(read.json().status, 'queued')
    t.ok(await queue.getJob(id), 'and so is its queue entry')
    const again = await submit(JOB, 'lost-answer-1')
    t.equal(again.json().id, id, 'and the next retry is its replay')
    t.equal(again.headers['idempotent-replayed'], 'true')
  },
)

t.test('a replay with ?wait of a job that has ended holds no wait once answered', async (t) => {
  // Found by review 23: the wait was registered before the job was read, and a job that
  // had ended publishes nothing more, so each such answer left a timer and its closures
  // for up to AIRLOCK_MAX_WAIT_MS (330 s), uncounted by the tenant's waits.
  const { waiter } = h.app.services
  const first = await submit(JOB, 'ended-wait-1')
  const { id } = first.json()
  t.equal((await h.request('DELETE', `/v1/jobs/${id}`)).json().status, 'cancelled')
  const before = waiter.held
  for (let i = 0; i < 20; i++) {
    const res = await submit(JOB, 'ended-wait-1', { url: '/v1/jobs?wait=true' })
    t.equal(res.json().status, 'cancelled', 'answered with the ended job')
  }
  t.equal(waiter.held, before, 'and no wait is held after')
})

t.test("a replay is its job's answer even after the tenant's quotas were lowered below it", async (t) => {
  // Found by review 23: the checks of today's quotas ran before the key was looked up, so
  // a retry after an operator's change was refused (400) though its job was there.
  const bearer = await tenantWithKey('idem-quota', { maxTimeoutMs: 60_000 })
  const job = { ...JOB, limits: { timeoutMs: 60_000 } }
  const first = await submit(job, 'quota-1', { bearer })
  t.equal(first.statusCode, 202)
  const lowered = await h.app.inject({
    method: 'PUT',
    url: '/v1/admin/tenants/idem-quota/quotas',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ maxTimeoutMs: 10_000 }),
  })
  t.equal(lowered.statusCode, 200)
  const fresh = await submit(job, 'quota-2', { bearer })
  t.equal(fresh.json().code, 'AIRLOCK_ERR_QUOTA_JOB_LIMITS', 'a new job over the quota is refused')
  const again = await submit(job, 'quota-1', { bearer })
  t.equal(again.statusCode, 202)
  t.equal(again.json().id, first.json().id, 'the replay names the job')
  t.equal(again.headers['idempotent-replayed'], 'true')
  const id = first.json().id
  await h.app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: { authorization: `Bearer ${bearer}` } })
  const waited = await submit(job, 'quota-1', { bearer, url: '/v1/jobs?wait=true' })
  t.equal(waited.statusCode, 200, 'with ?wait, the ended job')
  t.same([waited.json().id, waited.json().status], [id, 'cancelled'])
})

t.test("Judge0's submissions take the key as POST /v1/jobs does; Piston's execute refuses it", async (t) => {
  // Found by review 23: both dropped the header without a word, so a client that sent it
  // and retried made two jobs.
  const judge0 = { source_code: 'echo hi', language_id: 46 }
  const first = await submit(judge0, 'judge0-1', { url: '/judge0/submissions' })
  t.equal(first.statusCode, 201)
  const again = await submit(judge0, 'judge0-1', { url: '/judge0/submissions' })
  t.equal(again.statusCode, 201)
  t.equal(again.json().token, first.json().token, 'the retry gets the token it had')
  t.equal(again.headers['idempotent-replayed'], 'true')
  const other = await submit({ ...judge0, source_code: 'echo other' }, 'judge0-1', { url: '/judge0/submissions' })
  t.equal(other.statusCode, 409)
  t.equal(other.json().code, 'AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED')
  const bad = await submit(judge0, 'not a key', { url: '/judge0/submissions' })
  t.equal(bad.statusCode, 400, 'a key that is not one is refused')

  const url = '/judge0/submissions/batch'
  const batch = { submissions: [judge0, { ...judge0, source_code: 'echo two' }] }
  const made = await submit(batch, 'judge0-batch-1', { url })
  t.equal(made.statusCode, 201)
  const remade = await submit(batch, 'judge0-batch-1', { url })
  t.same(remade.json(), made.json(), 'a batch sent again answers the tokens it had')
  t.equal(new Set(made.json().map((s: { token: string }) => s.token)).size, 2)

  const piston = await submit({ language: 'bash', version: '*', files: [{ content: 'echo hi' }] }, 'piston-1', {
    url: '/piston/api/v2/execute',
  })
  t.equal(piston.statusCode, 400)
  t.match(piston.json(), { code: 'AIRLOCK_ERR_VALIDATION', message: /takes no Idempotency-Key/ })
})

t.test('a replay of a queued job whose queue entry was lost puts the entry back, for a worker to see', async (t) => {
  // A first request whose record was written, whose queue entry was not, and whose
  // take-back of the record failed too (Redis gone between them) was answered 5xx; its
  // retry, a replay, answered 202 for a job no worker would ever see.
  const { queue, submitRedis } = h.app.services
  const first = await submit(JOB, 'lost-entry-1')
  const { id } = first.json()
  await queue.remove(id)
  t.notOk(await queue.getJob(id), 'the entry is gone, the record stays queued')
  const again = await submit(JOB, 'lost-entry-1')
  t.equal(again.statusCode, 202)
  t.equal(again.json().id, id)
  t.equal((await queue.getJob(id))?.id, id, 'the replay put the entry back')
  // bullmq's add of an id it holds adds nothing, but still writes (its id counter, an event).
  const counter = await submitRedis.get(queue.toKey('id'))
  t.equal((await submit(JOB, 'lost-entry-1')).statusCode, 202)
  t.equal(await submitRedis.get(queue.toKey('id')), counter, 'a replay of a job whose entry is there writes nothing')
})

t.test("a fault while a replay's entry is put back accepts none of the call's jobs, so a retry is safe", async (t) => {
  const { queue } = h.app.services
  const url = '/v1/jobs/batch'
  const made = (await submit({ jobs: [JOB] }, 'lost-entry-batch', { url })).json().items[0].id
  await queue.remove(made)
  const before = await jobsOf('alice')
  const add = queue.add.bind(queue)
  queue.add = (async () => {
    throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })
  }) as typeof queue.add
  t.teardown(() => {
    queue.add = add
  })
  const both = { jobs: [JOB, { runtime: 'bash', source: 'echo new' }] }
  const failed = await submit(both, 'lost-entry-batch', { url })
  t.equal(failed.statusCode, 503, 'the batch is refused whole')
  t.same(await jobsOf('alice'), before, 'and its new job was not made')
  queue.add = add
  const retried = (await submit(both, 'lost-entry-batch', { url })).json()
  t.same(
    retried.items.map((i: { id: string; replayed?: boolean }) => [i.id === made, i.replayed === true]),
    [
      [true, true],
      [false, false],
    ],
    'its retry replays the first and makes the second',
  )
  t.ok(await queue.getJob(made), 'with the first one queued again')
})

t.test('a submit whose answer was lost takes back the queue entry of a create a quota refused', async (t) => {
  // Found by the review of the change: the transaction writes the queue entry even when
  // its create is refused; with the answer lost, that entry was kept for a keyed id whose
  // take-back found no record, and a later job of that key could have been left without one.
  const { queue, submitRedis } = h.app.services
  const bearer = await tenantWithKey('idem-lost-quota', { maxQueued: 1 })
  t.equal((await submit(JOB, 'fills-the-queue', { bearer })).statusCode, 202)
  loseTransactionAnswers(t, submitRedis)
  const refused = await submit({ runtime: 'bash', source: 'echo refused' }, 'lost-refused-1', { bearer })
  t.equal(refused.statusCode, 503, 'answered as a lost answer is')
  t.notOk(await queue.getJob(keyedJobId('idem-lost-quota', 'lost-refused-1')), 'and no queue entry is left for it')
})
