import t from 'tap'
import { Redis } from 'ioredis'
import type { JobList } from '../../core/job.js'
import type { JobSpec } from '../../core/job-spec.js'
import { newJobId } from '../../core/job-store.js'
import { build } from '../helper.js'

const spec: JobSpec = {
  runtime: 'bash',
  files: [{ path: 'main.sh', content: 'true' }],
  entrypoint: 'main.sh',
  args: [],
  stdin: '',
  env: {},
  limits: { timeoutMs: 1000, memoryMb: 64, cpus: 1, pids: 32, outputBytes: 1024 },
}

t.test("GET /v1/jobs pages through the tenant's jobs newest first, without gaps or repeats", async (t) => {
  const h = await build(t, { worker: false })
  const { store } = h.app.services
  const base = Date.now() - 100_000
  const ids: string[] = []
  // Several jobs share a millisecond, so the cursor must break ties.
  for (let i = 0; i < 45; i++) {
    const id = newJobId()
    ids.push(id)
    await store.create(id, 'alice', spec, base + Math.floor(i / 3))
  }
  await store.create(newJobId(), 'bob', spec, base)

  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await h.request('GET', `/v1/jobs?limit=20${cursor ? `&cursor=${cursor}` : ''}`)
    t.equal(res.statusCode, 200)
    const page = res.json<JobList>()
    t.ok(page.items.length <= 20)
    seen.push(...page.items.map((j) => j.id))
    cursor = page.nextCursor
    pages++
  } while (cursor && pages < 10)
  t.equal(pages, 3, 'three pages of 20, 20 and 5')
  t.equal(seen.length, 45)
  t.equal(new Set(seen).size, 45, 'no job twice')
  t.same(new Set(seen), new Set(ids), "only alice's jobs")
  const created = await Promise.all(seen.map(async (id) => (await store.get(id))!.job.createdAt))
  t.same(created, [...created].sort().reverse(), 'newest first')

  const bob = (await h.request('GET', '/v1/jobs', undefined, 'bob')).json<JobList>()
  t.equal(bob.items.length, 1, 'bob sees only his own job')
  t.notOk(ids.includes(bob.items[0]!.id))
})

t.test(
  'GET /v1/jobs goes on after a cursor inside one batch in one read, whether or not its entry is still there',
  async (t) => {
    // No queue or storage quota: 244 jobs stay queued.
    const h = await build(t, {
      worker: false,
      env: { AIRLOCK_DEFAULT_MAX_QUEUED: '0', AIRLOCK_DEFAULT_MAX_STORED_BYTES: '0' },
    })
    const { store } = h.app.services
    const keys = store['keys' as never] as { job(id: string): string; tenantJobs(t: string): string }
    const index = keys.tenantJobs('alice')
    const base = Date.now() - 100_000
    // One batch: 240 jobs made in one millisecond, between two older and two newer ones.
    const at = (id: string, score: number) => ({ id, score })
    const made: { id: string; score: number }[] = []
    for (const [n, score] of [
      [2, base + 1],
      [240, base],
      [2, base - 1],
    ] as const) {
      for (let i = 0; i < n; i++) made.push(at(newJobId(), score))
    }
    const results = new Set<string>()
    for (const e of made) results.add((await store.create(e.id, 'alice', spec, e.score)).result)
    t.same([...results], ['created'], 'all made')
    const expected = [...made].sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : -1)).map((e) => e.id)

    const redis = new Redis(h.config.redisUrl)
    const monitor = await redis.monitor()
    t.teardown(() => {
      monitor.disconnect()
      redis.disconnect()
    })
    let reads = 0
    let marked: (() => void) | undefined
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args[0]?.toLowerCase() !== 'echo' && args.includes(index)) reads++
      if (args[0]?.toLowerCase() === 'echo' && args[1] === index) marked?.()
    })
    // MONITOR tells of a command after it ran: a marker sent after a page's commands and
    // seen come back puts all of them before it.
    const settled = () =>
      new Promise<void>((resolve) => {
        marked = resolve
        void redis.echo(index)
      })
    const seen: string[] = []
    const readsPerPage: number[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      if (pages === 10) {
        // The cursor's own entry is gone, as when its record expired and a page dropped it.
        const last = seen[seen.length - 1]!
        await redis.del(keys.job(last))
        await redis.zrem(index, last)
      }
      await settled()
      const before = reads
      const res = await h.request('GET', `/v1/jobs?limit=10${cursor ? `&cursor=${cursor}` : ''}`)
      t.equal(res.statusCode, 200)
      const page = res.json<JobList>()
      seen.push(...page.items.map((j) => j.id))
      cursor = page.nextCursor
      pages++
      await settled()
      readsPerPage.push(reads - before)
    } while (cursor && pages < 40)
    t.equal(pages, 25, '244 jobs in pages of 10')
    t.same(seen, expected, 'every job once, newest first, a batch by id')
    t.ok(
      readsPerPage.every((n) => n <= 2),
      `each page reads the index once (and drops what it found gone): ${readsPerPage.join(' ')}`,
    )
  },
)

t.test('GET /v1/jobs?status= filters, and a listing carries no output', async (t) => {
  const h = await build(t, { worker: false })
  const { store } = h.app.services
  const queued = newJobId()
  const cancelled = newJobId()
  await store.create(queued, 'alice', spec)
  await store.create(cancelled, 'alice', spec)
  t.same(await store.cancel(cancelled, 'alice'), { kind: 'cancelled' })

  const onlyCancelled = (await h.request('GET', '/v1/jobs?status=cancelled')).json<JobList>()
  t.same(
    onlyCancelled.items.map((j) => j.id),
    [cancelled],
  )
  t.equal(onlyCancelled.items[0]!.status, 'cancelled')
  t.equal(onlyCancelled.items[0]!.reason, 'cancelled before it started')
  t.notOk('stdout' in onlyCancelled.items[0]!, 'no output in a listing')
  const both = (await h.request('GET', '/v1/jobs?status=queued,cancelled')).json<JobList>()
  t.same(new Set(both.items.map((j) => j.id)), new Set([queued, cancelled]))
  t.equal(both.nextCursor, null)
})

t.test('GET /v1/jobs drops index entries whose job record has expired', async (t) => {
  const h = await build(t, { worker: false })
  const { store } = h.app.services
  const kept = newJobId()
  const expired = newJobId()
  await store.create(kept, 'alice', spec)
  await store.create(expired, 'alice', spec)
  const redis = new Redis(h.config.redisUrl)
  t.teardown(() => redis.disconnect())
  const keys = h.app.services.store['keys' as never] as { job(id: string): string; tenantJobs(t: string): string }
  await redis.del(keys.job(expired))
  const list = (await h.request('GET', '/v1/jobs')).json<JobList>()
  t.same(
    list.items.map((j) => j.id),
    [kept],
  )
  t.equal(await redis.zscore(keys.tenantJobs('alice'), expired), null, 'the stale entry is gone from the index')
  // Defense in depth (review 23): an entry naming another tenant's record lists nothing of it.
  const bobs = newJobId()
  await store.create(bobs, 'bob', spec)
  await redis.zadd(keys.tenantJobs('alice'), Date.now(), bobs)
  const mixed = (await h.request('GET', '/v1/jobs')).json<JobList>()
  t.same(
    mixed.items.map((j) => j.id),
    [kept],
    "bob's job is not in alice's list",
  )
  t.equal(await redis.zscore(keys.tenantJobs('alice'), bobs), null, 'and its entry is dropped')
})

t.test(
  'GET /v1/jobs drops an index entry only for a record that is not there, never for a read that failed',
  async (t) => {
    // Found by a code review: a read that failed (with the API's command timeout, a Redis
    // stalled mid-page) was taken for an expired record, and its entry dropped for good.
    // A read made to fail here by a record of the wrong type.
    const h = await build(t, { worker: false })
    const { store } = h.app.services
    const unreadable = newJobId()
    await store.create(unreadable, 'alice', spec)
    const redis = new Redis(h.config.redisUrl)
    t.teardown(() => redis.disconnect())
    const keys = h.app.services.store['keys' as never] as { job(id: string): string; tenantJobs(t: string): string }
    await redis.del(keys.job(unreadable))
    await redis.set(keys.job(unreadable), 'not a hash')
    const res = await h.request('GET', '/v1/jobs')
    t.equal(res.statusCode, 500, 'the page fails')
    t.ok(await redis.zscore(keys.tenantJobs('alice'), unreadable), 'and the entry stays in the index')
  },
)

t.test('GET /v1/jobs refuses a bad status, limit or cursor with 400 and a code', async (t) => {
  const h = await build(t, { worker: false })
  for (const query of [
    'status=done',
    'status=queued,',
    'limit=0',
    'limit=101',
    'limit=x',
    'cursor=abc',
    `cursor=${Buffer.from('1:job_zz').toString('base64url')}`,
  ]) {
    const res = await h.request('GET', `/v1/jobs?${query}`)
    t.equal(res.statusCode, 400, query)
    t.equal(res.json<{ code: string }>().code, 'AIRLOCK_ERR_VALIDATION', query)
  }
  t.equal((await h.request('GET', '/v1/jobs', undefined)).statusCode, 200)
  const anon = await h.app.inject({ method: 'GET', url: '/v1/jobs' })
  t.equal(anon.statusCode, 401)
})

t.test('jobs submitted through the API page through with their cursors', async (t) => {
  // Found by a code review: the deployment's clock (core/clock.ts) gave fractional
  // milliseconds, a listing's cursor carried them, and the next page was refused (400).
  const h = await build(t, { worker: false })
  const ids: string[] = []
  for (let i = 0; i < 5; i++)
    ids.push((await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'true' })).json<{ id: string }>().id)
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const res = await h.request('GET', `/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
    t.equal(res.statusCode, 200, `a page${cursor ? ` after ${cursor}` : ''}`)
    const page = res.json<JobList>()
    seen.push(...page.items.map((j) => j.id))
    cursor = page.nextCursor
  } while (cursor && seen.length < 10)
  t.same(seen.sort(), ids.sort(), 'every job once')
  const job = (await h.request('GET', `/v1/jobs/${ids[0]}`)).json<{ createdAt: string }>()
  t.match(job.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'its time in whole milliseconds')
})
