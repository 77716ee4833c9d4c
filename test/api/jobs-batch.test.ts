import t from 'tap'
import type { AirlockError } from '../../core/errors.js'
import type { JobRequest } from '../../core/job-spec.js'
import { build, loseTransactionAnswers, TENANTS } from '../helper.js'

// POST /v1/jobs/batch against the real Redis and queue: each job accepted or refused on
// its own, with the code a single POST /v1/jobs gives it.
const ADMIN_KEY = 'batch-admin-key-0001'
const h = await build(t, { worker: false, env: { AIRLOCK_ADMIN_KEY: ADMIN_KEY, AIRLOCK_MAX_BATCH_JOBS: '8' } })

const call = (method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown, key?: string) =>
  h.app.inject({
    method,
    url,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  })

async function tenantWithKey(name: string, quotas: Record<string, number>): Promise<string> {
  t.equal((await call('POST', '/v1/admin/tenants', { name, quotas }, ADMIN_KEY)).statusCode, 201)
  return (await call('POST', `/v1/admin/tenants/${name}/keys`, { role: 'member' }, ADMIN_KEY)).json().key
}

interface Item {
  index: number
  id?: string
  status?: string
  error?: { statusCode: number; code: string; message: string; details?: unknown }
}

t.test('each job of a batch is accepted or refused on its own, as a single submit would be', async (t) => {
  const jobs = [
    { runtime: 'python', source: 'print(1)' },
    { runtime: 'cobol', source: 'x' },
    { runtime: 'python', source: 'x', limits: { memoryMb: 1 } },
    { runtime: 'python', source: 'x', limits: { timeoutMs: 99_999_999 } },
    { runtime: 'python' },
    { runtime: 'python', source: 'x', isolation: 'runc' },
    'not a job',
    { runtime: 'bash', files: [{ path: 'main.sh', content: 'echo 2' }], args: ['a'] },
  ]
  const res = await h.request('POST', '/v1/jobs/batch', { jobs })
  t.equal(res.statusCode, 200)
  const body = res.json<{ accepted: number; refused: number; items: Item[] }>()
  t.same([body.accepted, body.refused], [2, 6])
  t.same(
    body.items.map((i) => i.index),
    [0, 1, 2, 3, 4, 5, 6, 7],
    'one item per job, in order',
  )
  for (const [i, job] of jobs.entries()) {
    const item = body.items[i]!
    if (item.id) {
      t.equal(item.status, 'queued')
      const stored = await h.request('GET', `/v1/jobs/${item.id}`)
      t.equal(stored.json().status, 'queued', `job ${i} is recorded`)
      t.ok(await h.app.services.queue.getJob(item.id), `and queued for a worker (job ${i})`)
      continue
    }
    const single = await h.request('POST', '/v1/jobs', job)
    t.equal(item.error?.statusCode, single.statusCode, `job ${i}: the status of a single submit`)
    t.same(item.error, single.json(), `job ${i}: the same error, code, message and details (${single.json().code})`)
  }
})

t.test('the batch itself: at least one job, at most AIRLOCK_MAX_BATCH_JOBS, an API key', async (t) => {
  for (const bad of [
    { jobs: [] },
    { jobs: Array(9).fill({ runtime: 'bash', source: 'true' }) },
    { jobs: {} },
    { jobs: [{ runtime: 'bash', source: 'true' }], extra: 1 },
    [],
  ]) {
    const res = await h.request('POST', '/v1/jobs/batch', bad)
    t.equal(res.statusCode, 400, JSON.stringify(bad).slice(0, 60))
    t.equal(res.json().code, 'AIRLOCK_ERR_VALIDATION')
  }
  t.equal((await call('POST', '/v1/jobs/batch', { jobs: [{ runtime: 'bash', source: 'true' }] })).statusCode, 401)
  const eight = await h.request('POST', '/v1/jobs/batch', { jobs: Array(8).fill({ runtime: 'bash', source: 'true' }) })
  t.equal(eight.json().accepted, 8, 'as many as the setting allows')
  t.equal(new Set(eight.json().items.map((i: Item) => i.id)).size, 8, 'each its own job')
})

t.test("the tenant's quotas count every job of a batch: the queue and the submission rate", async (t) => {
  const queued = await tenantWithKey('quinn', { maxQueued: 2 })
  const three = Array(3).fill({ runtime: 'bash', source: 'true' })
  const waiting = await h.app.services.queue.getWaitingCount()
  const q = (await call('POST', '/v1/jobs/batch', { jobs: three }, queued)).json<{ items: Item[] }>()
  t.same(
    q.items.map((i) => i.status ?? i.error?.code),
    ['queued', 'queued', 'AIRLOCK_ERR_QUOTA_QUEUED'],
  )
  t.equal(await h.app.services.queue.getWaitingCount(), waiting + 2, 'the refused job left no queue entry for a worker')

  const rated = await tenantWithKey('rita', { submitsPerSecond: 2 })
  // Start at the beginning of a second so all of it falls in one.
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)))
  const r = (await call('POST', '/v1/jobs/batch', { jobs: three }, rated)).json<{ items: Item[] }>()
  t.same(
    r.items.map((i) => i.status ?? i.error?.code),
    ['queued', 'queued', 'AIRLOCK_ERR_QUOTA_RATE'],
  )
  const single = await call('POST', '/v1/jobs', three[0], rated)
  t.equal(single.json().code, 'AIRLOCK_ERR_QUOTA_RATE', 'and a single submit in the same second after it')
  const none = await call('POST', '/v1/jobs/batch', { jobs: three }, rated)
  t.equal(none.statusCode, 429, 'a batch none of whose jobs may go yet is a 429, to be retried whole')
  t.ok(Number(none.headers['retry-after']) >= 1, 'with Retry-After')
})

t.test('a batch whose queue entries cannot be written takes none of its jobs, and says to retry', async (t) => {
  // The queue's Redis failing at this point is what this stands in for: the transaction
  // that writes the records and their queue entries runs, and its answer is lost.
  loseTransactionAnswers(t, h.app.services.submitRedis)
  const waiting = await h.app.services.queue.getWaitingCount()
  const before = (await h.request('GET', '/v1/jobs?limit=100')).json().items.length
  const res = await h.request('POST', '/v1/jobs/batch', {
    jobs: [
      { runtime: 'bash', source: 'true' },
      { runtime: 'bash', source: 'true' },
    ],
  })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'AIRLOCK_ERR_STORE_UNAVAILABLE')
  t.equal(
    (await h.request('GET', '/v1/jobs?limit=100')).json().items.length,
    before,
    'no record is left of a job no worker would see',
  )
  const mixed = await h.request('POST', '/v1/jobs/batch', {
    jobs: [
      { runtime: 'cobol', source: 'x' },
      { runtime: 'bash', source: 'true' },
    ],
  })
  t.equal(mixed.statusCode, 200, 'with a job refused for itself, each is answered on its own')
  t.same(
    mixed.json().items.map((i: Item) => i.error?.code),
    ['AIRLOCK_ERR_UNKNOWN_RUNTIME', 'AIRLOCK_ERR_STORE_UNAVAILABLE'],
  )
  t.equal(await h.app.services.queue.getWaitingCount(), waiting, 'nor a queue entry of a job that was refused')
})

t.test(
  'single submits made in the same turn of the event loop go to Redis together, each answered on its own',
  async (t) => {
    const { jobService } = h.app.services
    const client = h.app.services.submitRedis
    const multi = client.multi.bind(client)
    let transactions = 0
    client.multi = ((...args: Parameters<typeof multi>) => {
      transactions++
      return multi(...args)
    }) as typeof client.multi
    t.teardown(() => {
      client.multi = multi
    })
    const job: JobRequest = { runtime: 'bash', source: 'true' }
    // All called before the loop turns, as the requests read in one poll phase are; how
    // requests spread over turns is up to the network, so this calls the service itself.
    const together = (tenant: string, jobs: JobRequest[]) =>
      Promise.allSettled(jobs.map((j) => jobService.submit(tenant, j, h.app.log)))
    const codes = (settled: PromiseSettledResult<unknown>[]) =>
      settled.map((s) => (s.status === 'fulfilled' ? 'accepted' : (s.reason as AirlockError).code))

    await tenantWithKey('sam', { submitsPerSecond: 3, maxMemoryMb: 256 })
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)))
    const answers = await together('sam', [job, { ...job, limits: { memoryMb: 512 } }, job, job, job, job])
    t.same(
      codes(answers),
      [
        'accepted',
        'AIRLOCK_ERR_QUOTA_JOB_LIMITS',
        'accepted',
        'AIRLOCK_ERR_QUOTA_RATE',
        'AIRLOCK_ERR_QUOTA_RATE',
        'AIRLOCK_ERR_QUOTA_RATE',
      ],
      'each takes its place in the rate in the order it came, as one after another would: the job refused for a limit too',
    )
    t.equal(transactions, 1, 'one transaction wrote the two it took')
    t.ok(
      ((answers[3] as PromiseRejectedResult).reason as AirlockError).retryAfterSeconds! >= 1,
      'a refusal for the rate says when to retry',
    )
    await tenantWithKey('wes', { submitsPerSecond: 3, maxMemoryMb: 256 })
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)))
    const oneByOne: PromiseSettledResult<unknown>[] = []
    for (const j of [job, { ...job, limits: { memoryMb: 512 } }, job, job, job, job])
      oneByOne.push((await together('wes', [j]))[0]!)
    t.same(codes(oneByOne), codes(answers), 'the same answers as the same jobs sent one after another')
    transactions = 0
    const ids = answers.flatMap((a) => (a.status === 'fulfilled' ? [(a.value as { id: string }).id] : []))
    t.equal(new Set(ids).size, 2, 'each accepted job has its own id')
    for (const id of ids) {
      t.equal((await h.app.services.store.view(id))?.status, 'queued', `${id} is recorded`)
      t.ok(await h.app.services.queue.getJob(id), `and queued for a worker (${id})`)
    }

    transactions = 0
    await tenantWithKey('tess', {})
    await tenantWithKey('uma', { maxQueued: 1 })
    const [many, one] = await Promise.all([together('tess', Array(10).fill(job)), together('uma', [job, job])])
    t.same(codes(many), Array(10).fill('accepted'), 'ten at once from one tenant are all taken')
    t.same(
      codes(one),
      ['accepted', 'AIRLOCK_ERR_QUOTA_QUEUED'],
      "another tenant's quota holds in the same turn, and only for that tenant",
    )
    t.equal(
      transactions,
      3,
      'two batches of at most AIRLOCK_MAX_BATCH_JOBS for one tenant, one for the other: no tenant is written with another',
    )

    // Clients whose answers went together send again together, read over a poll phase or two.
    transactions = 0
    await tenantWithKey('wade', {})
    const early = jobService.submit('wade', job, h.app.log)
    const late = new Promise<unknown>((resolve, reject) =>
      setImmediate(() => jobService.submit('wade', job, h.app.log).then(resolve, reject)),
    )
    await Promise.all([early, late])
    t.equal(transactions, 1, 'a submit made in the next turn of the loop goes with the one before it')

    const single = await call('POST', '/v1/jobs', job, await tenantWithKey('vic', {}))
    t.equal(single.statusCode, 202, 'a submit over HTTP goes the same way')
  },
)

t.test('what is wrong with a job is listed at a cost its size cannot drive up', async (t) => {
  // Within what a JSON body may hold (bounded-json.ts), far past what the schema allows.
  const huge = { runtime: 'python', source: 'x', args: Array(15_000).fill(0) }
  const one = await h.request('POST', '/v1/jobs', huge)
  t.equal(one.statusCode, 400)
  t.match(one.json(), {
    code: 'AIRLOCK_ERR_VALIDATION',
    details: [{ path: '/', message: /has more than the \d+ elements any valid value can have/ }],
  })
  t.equal(one.json().details.length, 1, 'one problem at its root, not one per element')
  const few = await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'x', args: Array(50).fill(0) })
  t.equal(few.statusCode, 400)
  t.ok(few.json().details.length > 1, 'a value of a size the schema allows has its problems listed')
  t.match(few.json().details[0], { path: '/args/0', message: 'must be string' })

  const batch = await h.request('POST', '/v1/jobs/batch', {
    jobs: [huge, { runtime: 'python', source: 'x', args: [0] }, { runtime: 'bash', source: 'true' }],
  })
  t.equal(batch.statusCode, 200)
  const items = batch.json<{ items: Item[] }>().items
  t.match(items[0], { error: { code: 'AIRLOCK_ERR_VALIDATION', details: [{ path: '/', message: /more than the/ }] } })
  t.match(items[1], { error: { code: 'AIRLOCK_ERR_VALIDATION', details: [{ path: '/args/0' }] } }, 'the next is listed')
  t.equal(items[2]!.status, 'queued')

  // Judge0's attributes: one refusal per extra attribute, were they all listed.
  const extra = Object.fromEntries(Array.from({ length: 4_000 }, (_, i) => [`a${i}`, 1]))
  const judge0 = await call(
    'POST',
    '/judge0/submissions',
    { source_code: 'x', language_id: 71, ...extra },
    TENANTS.alice,
  )
  t.equal(judge0.statusCode, 422)
  t.ok(Object.keys(judge0.json()).length <= 20, `a few attribute errors, not 4,000 (${judge0.body.slice(0, 200)})`)
})

t.test("Judge0's batch refuses as the rest of the API does", async (t) => {
  const tooMany = await call(
    'POST',
    '/judge0/submissions/batch',
    { submissions: Array(9).fill({ source_code: 'echo', language_id: 46 }) },
    TENANTS.alice,
  )
  t.equal(tooMany.statusCode, 400, "AIRLOCK_MAX_BATCH_JOBS (8 here) bounds Judge0's batch of 20 too")
  t.match(tooMany.json().error, /less than or equal to 8/)
  const tokens = Array.from({ length: 9 }, (_, i) => `job_${String(i).padStart(32, '0')}`).join(',')
  const readMany = await call('GET', `/judge0/submissions/batch?tokens=${tokens}`, undefined, TENANTS.alice)
  t.equal(readMany.statusCode, 400, 'and its batch read, by the same bound (found by review 23)')
  t.match(readMany.json().error, /less than or equal to 8/)

  const rated = await tenantWithKey('judy', { submitsPerSecond: 3 })
  const two = { submissions: Array(2).fill({ source_code: 'echo', language_id: 46 }) }
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)))
  const first = await call(
    'POST',
    '/v1/jobs/batch',
    { jobs: Array(3).fill({ runtime: 'bash', source: 'true' }) },
    rated,
  )
  t.equal(first.json().accepted, 3)
  const none = await call('POST', '/judge0/submissions/batch', two, rated)
  t.equal(none.statusCode, 429, 'a batch none of whose submissions may go yet is a 429, to be retried whole')
  t.equal(none.json().code, 'AIRLOCK_ERR_QUOTA_RATE')
  t.ok(Number(none.headers['retry-after']) >= 1, 'with Retry-After')
  const mixed = await call(
    'POST',
    '/judge0/submissions/batch',
    { submissions: [{ source_code: 'echo', language_id: 999 }, two.submissions[0]] },
    rated,
  )
  t.equal(mixed.statusCode, 422)
  t.match(mixed.json(), [{ language_id: [/999/] }, { error: /submissions per second/, code: 'AIRLOCK_ERR_QUOTA_RATE' }])
})
