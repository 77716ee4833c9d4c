import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { defineJobScripts, READ_SCRIPTS, scriptSource } from '../../core/job-lifecycle/scripts.js'
import { JobEventReader } from '../../core/job-events.js'
import {
  FINAL_STATUSES,
  isFinalStatus,
  TRANSITIONS,
  transitionsTable,
  type TransitionName,
} from '../../core/job-lifecycle/transitions.js'
import { JOB_STATUSES, type JobStatus } from '../../core/job-status.js'
import { JobStore, LIVE_TTL_BEYOND_RETENTION_SECONDS, newJobId } from '../../core/job-store.js'
import { loadConfig } from '../../core/config.js'
import { redisKeys } from '../../core/redis-keys.js'
import { redisUrl, storeOnRedis } from '../helper.js'

const LUA_DIR = new URL('../../core/job-lifecycle/lua/', import.meta.url)

t.test('the final statuses are those no move starts from: the ones finish ends in', async (t) => {
  t.same([...FINAL_STATUSES].sort(), [...TRANSITIONS.finish.to].sort())
  t.same(
    JOB_STATUSES.filter((s) => !isFinalStatus(s)),
    ['queued', 'running'],
  )
})

t.test("the lifecycle README's table is the transition table", async (t) => {
  const readme = await readFile(new URL('../README.md', LUA_DIR), 'utf8')
  const table = /<!-- transitions:start -->\n([\s\S]*?)\n<!-- transitions:end -->/.exec(readme)?.[1]
  t.equal(table, transitionsTable(), 'regenerate it from transitionsTable() when a move changes')
})

t.test('each script is headed with its KEYS, ARGV and reply, and builds no key of its own', async (t) => {
  const files = (await readdir(LUA_DIR)).filter((f) => f.endsWith('.lua')).sort()
  t.same(
    files,
    [...new Set(Object.values(TRANSITIONS).map((m) => `${m.script}.lua`))].sort(),
    'one script per move, and no other',
  )
  for (const file of files) {
    const text = await readFile(new URL(file, LUA_DIR), 'utf8')
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(text)?.[1] ?? ''
    t.match(header, /KEYS\[1/, `${file} names its KEYS`)
    t.match(header, /ARGV\[1/, `${file} names its ARGV`)
    t.match(header, /Returns/, `${file} says what it returns`)
    const source = scriptSource(file.replace(/\.lua$/, ''))
    t.notMatch(source, /@include/, `${file}: every include is resolved`)
    // A key made inside a script is one redis-keys.ts does not list and a cluster cannot route.
    t.notMatch(source, /':tenant:'|string\.sub\(KEYS/, `${file} names only keys it is given`)
  }
})

t.test('the read scripts are headed too, read-only, and go by SHA', async (t) => {
  for (const file of Object.values(READ_SCRIPTS)) {
    const text = await readFile(new URL(`${file}.lua`, LUA_DIR), 'utf8')
    const header = /^#!lua flags=no-writes\n--\[\[([\s\S]*?)\]\]/.exec(text)?.[1] ?? ''
    t.match(header, /KEYS\[1/, `${file} names its KEYS`)
    t.match(header, /ARGV\[1/, `${file} names its ARGV`)
    t.match(header, /Returns/, `${file} says what it returns`)
    const source = scriptSource(file)
    t.match(source, /^#!lua flags=no-writes\n/, `${file}: read-only (it answers when Redis is full), its flag first`)
    t.notMatch(source, /@include/, `${file}: every include is resolved`)
  }
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.disconnect())
  defineJobScripts(redis)
  const sent: string[] = []
  const sendCommand = redis.sendCommand.bind(redis)
  redis.sendCommand = ((command: { name: string }) => {
    sent.push(command.name)
    return sendCommand(command as never)
  }) as typeof redis.sendCommand
  const events = new JobEventReader(redis, redisKeys(`read-sha-${randomBytes(4).toString('hex')}`))
  t.same(await events.within('job_00000000000000000000000000000000', 0), [], 'no events: none read')
  t.notOk(sent.includes('eval'), `by SHA, not by text (${sent.join(', ')})`)
})

/** A job's end and how it ran, for the moves that finish one. */
const outcome = {
  status: 'succeeded' as const,
  exitCode: 0,
  signal: null,
  reason: null,
  stdout: '',
  stderr: '',
  truncated: false,
  startupMs: 1,
  runMs: 1,
}
const meta = { executor: 'local', isolation: null, outputInEvents: true }

t.test('against Redis, each move writes only from the statuses its table row lists', async (t) => {
  const { redis, keys, store, spec } = storeOnRedis(t, 'test-lifecycle')
  // Each move, and whether it wrote (a move that may not start here answers "nothing done").
  const moves: Record<Exclude<TransitionName, 'create'>, (id: string) => Promise<boolean>> = {
    claim: async (id) => (await store.claim(id, 'w2')) === 'claimed',
    requeue: (id) => store.requeue(id, 'w1'),
    takeOver: (id) => store.takeOver(id, 'w2', 'w1'),
    finish: (id) => store.finish(id, outcome, meta),
    cancel: async (id) => ['cancelled', 'cancelling'].includes((await store.cancel(id, 'alice')).kind),
    lost: (id) => store.markLost(id, 'w1'),
    withdraw: async (id) => (await store.withdraw(id, 'alice')) === 'withdrawn',
    log: async (id) => (await store.appendLog(id, 'stdout', 'x')) > 0,
    step: async (id) => (await store.appendStep(id, 'test', 0)) > 0,
    launch: async (id) => (await store.countLaunch(id, 'w1')) > 0,
  }
  for (const [move, run] of Object.entries(moves) as [keyof typeof moves, (id: string) => Promise<boolean>][]) {
    for (const status of JOB_STATUSES) {
      const id = newJobId()
      await store.create(id, 'alice', spec)
      await redis.hset(keys.job(id), 'status', status, 'worker', 'w1')
      const from: readonly JobStatus[] = TRANSITIONS[move].from
      t.equal(await run(id), from.includes(status), `${move} from ${status}`)
    }
  }
  // A launch is counted only for the worker that holds the job (review 16: a worker frozen
  // between its claim and its launch started the program after its job had ended as lost).
  const held = newJobId()
  await store.create(held, 'alice', spec)
  t.equal(await store.claim(held, 'w1'), 'claimed')
  t.equal(await store.countLaunch(held, 'w2'), 0, "another worker's launch is refused")
  t.equal(await store.countLaunch(held, 'w1'), 1, "the holder's is counted")
  t.equal(await store.countLaunch(held, 'w1'), 2, 'and a second would show')
  t.ok(await store.markLost(held, 'w1'))
  t.equal(await store.countLaunch(held, 'w1'), 0, 'once the job ended as lost, its old worker may not launch it')
  t.equal(await redis.hget(keys.job(held), 'launches'), '2')
  // A take-back says whether the job stands, so a submit that lost its answer needs no second read.
  t.equal(await store.withdraw(held, 'alice'), 'stands', 'an ended job stands')
  t.equal(await store.withdraw(held, 'bob'), 'absent', "another tenant's is none of this one's")
  const queued = newJobId()
  await store.create(queued, 'alice', spec, 1_000_000)
  const made = { createdAt: 1_000_001, digest: undefined }
  t.equal(await store.withdraw(queued, 'alice', { made }), 'another', 'a create takes back only the job it made')
  t.equal(await store.withdraw(queued, 'alice', { made: { ...made, createdAt: 1_000_000 } }), 'withdrawn')
  t.equal(await store.withdraw(queued, 'alice', { made }), 'absent', 'then there is none')
  await store.create(queued, 'alice', spec)
  t.equal(await store.withdraw(queued, 'alice'), 'withdrawn')
  t.equal(await store.withdraw(queued, 'alice'), 'absent', 'and then it is gone')

  const id = newJobId()
  const now = Date.now()
  t.same(await store.create(id, 'alice', spec, now), { result: 'created' })
  t.same(
    await store.create(id, 'alice', spec, now),
    { result: 'created' },
    'the same create sent again (a resent transaction) is the one job, created',
  )
  await t.rejects(
    store.create(id, 'alice', spec, now + 1),
    /is taken/,
    'create makes a job from nothing, never over one',
  )
  await t.rejects(store.create(id, 'bob', spec, now), /is taken/, "nor over another tenant's")
})

t.test('one create for several jobs: each created or refused in order, as if it had come alone', async (t) => {
  const { redis, keys, store, spec } = storeOnRedis(t, 'test-create-many')
  const now = Date.now()
  const taken = newJobId()
  t.same(await store.create(taken, 'bob', spec, now), { result: 'created' })
  await redis.hset(keys.tenant('alice'), 'quotas', JSON.stringify({ maxQueued: 2 }))
  const ids = [newJobId(), taken, newJobId(), newJobId()]
  const jobs = ids.map((id) => ({ id, spec }))
  const results = await store.createMany('alice', jobs, now)
  t.same(results[0], { result: 'created' })
  t.match(results[1], /is taken/, "another tenant's id is refused; the jobs after it go on")
  t.same(results[2], { result: 'created' })
  t.same(results[3], { result: 'queued-quota' }, 'the third of alice counts the two created before it')
  t.same(await redis.zcard(keys.tenantQueued('alice')), 2)
  t.equal(await redis.hget(keys.job(ids[0]!), 'tenant'), 'alice')
  t.equal(await redis.hget(keys.job(taken), 'tenant'), 'bob', 'a taken record is left as it was')
  t.equal(await redis.exists(keys.job(ids[3]!)), 0, 'a refused job leaves no record')
  const [event] = await redis.xrange(keys.jobEvents(ids[2]!), '-', '+')
  t.same(event?.[1].slice(0, 2), ['seq', '1'], "each created job's first event is its own, numbered 1")
  t.same(
    await store.createMany('alice', jobs, now),
    [{ result: 'created' }, results[1], { result: 'created' }, { result: 'queued-quota' }],
    'the same call sent again (a resent transaction) changes nothing',
  )
  t.same(await redis.zcard(keys.tenantQueued('alice')), 2)

  await redis.hset(keys.tenant('carol'), 'quotas', JSON.stringify({ maxStoredBytes: 1 }))
  const [refused] = await store.createMany('carol', [{ id: newJobId(), spec }], now)
  t.match(refused, { result: 'storage-quota', heldBytes: 0 }, 'the storage quota refuses with what the tenant holds')
  t.same(await store.createMany('carol', [], now), [], 'no jobs, no call')
})

t.test(
  "an expired job's index entry and storage entry go with its record, with a storage quota or without",
  async (t) => {
    // Found by the twelfth review: without a storage quota the tenant's storage entries were
    // never forgotten (they grew with every job ever made), and with a short retention the
    // index entry outlived the record, and its charge, by a day and the retention.
    const { redis, keys, store, spec } = storeOnRedis(t, 'test-forget')
    for (const [tenant, quotas] of [
      ['dave', { retentionSeconds: 60 }],
      ['erin', { retentionSeconds: 60, maxStoredBytes: 1_000_000_000 }],
    ] as const) {
      await redis.hset(keys.tenant(tenant), 'quotas', JSON.stringify(quotas))
      const ended = newJobId()
      await store.create(ended, tenant, spec)
      t.equal(await store.claim(ended, 'w1'), 'claimed')
      t.ok(await store.finish(ended, outcome, meta))
      t.ok(await redis.zscore(keys.tenantJobs(tenant), ended), `${tenant}: an ended job is in the index while kept`)
      // A create dated two minutes on: by the scores its expiry was set with (a 60 s retention),
      // its record has expired by then (Redis's own expiry of the record is not waited for).
      // A second more: the sweep takes expiries a minute before the create, not at it, and the
      // finish above may have come in the same millisecond as Date.now() here.
      const later = newJobId()
      t.same(await store.create(later, tenant, spec, Date.now() + 121_000), { result: 'created' })
      t.equal(await redis.zscore(keys.tenantJobs(tenant), ended), null, `${tenant}: its index entry is gone`)
      t.equal(await redis.zscore(keys.tenantStored(tenant), ended), null, `${tenant}: its storage entry is gone`)
      t.equal(await redis.hget(keys.tenantStoredBytes(tenant), ended), null)
      t.ok(await redis.zscore(keys.tenantJobs(tenant), later), `${tenant}: the new job is indexed`)
    }
  },
)

t.test('a create drops expired queued and index entries a bounded number at a time', async (t) => {
  // Found by a code review: every entry past its record's life was dropped in one call, so a
  // tenant without quotas, back after a long time away, could hold Redis for one long sweep.
  const { redis, keys, store, spec } = storeOnRedis(t, 'test-sweep')
  const stale = Array.from({ length: 1000 }, (_, i) => [i + 1, `job_stale${String(i).padStart(27, '0')}`]).flat()
  await redis.zadd(keys.tenantJobs('frank'), ...stale)
  await redis.zadd(keys.tenantQueued('frank'), ...stale)
  const first = newJobId()
  t.same(await store.create(first, 'frank', spec), { result: 'created' })
  t.equal(await redis.zcard(keys.tenantJobs('frank')), 1000 - 202 + 1, 'a create of one drops 202 of the index')
  t.equal(await redis.zcard(keys.tenantQueued('frank')), 1000 - 202 + 1, 'and of the queued set')
  const batch = Array.from({ length: 10 }, () => ({ id: newJobId(), spec }))
  await store.createMany('frank', batch)
  t.equal(await redis.zcard(keys.tenantJobs('frank')), 799 - 220 + 10, 'a batch of ten, 220: more than it adds')
  for (let i = 0; i < 4; i++) await store.create(newJobId(), 'frank', spec)
  t.equal(await redis.zcard(keys.tenantJobs('frank')), 1 + 10 + 4, 'until none is left but the live ones')
  t.ok(await redis.zscore(keys.tenantJobs('frank'), first), 'the live ones stay')
})

t.test("a claimed job's record outlives the longest job a server may allow, and its retention", async (t) => {
  // Found by a code review (L4): a record lived a day and its retention from its claim; a job
  // with the largest timeout a server may allow (24 h), plus the time a Kubernetes start may
  // take, outlived it with a short retention, and its result was lost.
  const config = loadConfig({ AIRLOCK_MAX_TIMEOUT_MS: '86400000', AIRLOCK_K8S_START_ALLOWANCE_MS: '3600000' })
  const { redis, keys, spec } = storeOnRedis(t, 'test-longest-job')
  const store = new JobStore(redis, keys, 60)
  const id = newJobId()
  await store.create(id, 'ida', spec)
  t.equal(await store.claim(id, 'w1'), 'claimed')
  const longestSeconds = (config.maxTimeoutMs + config.k8sStartAllowanceMs) / 1000
  const ttl = await redis.ttl(keys.job(id))
  t.ok(ttl > longestSeconds + 60, `the record lives ${ttl} s from its claim: more than ${longestSeconds + 60} s`)
})

t.test("a job that waited long in the queue stays in its tenant's listing while its record lives", async (t) => {
  // Found by a code review (L3): the index entry is scored by creation and was cut a live TTL
  // after it, while a claim renews the record for a live TTL: a job claimed after waiting
  // long ran, and ended, missing from GET /v1/jobs.
  const { redis, keys, store, spec } = storeOnRedis(t, 'test-long-queued')
  const liveMs = (3600 + LIVE_TTL_BEYOND_RETENTION_SECONDS) * 1000
  const id = newJobId()
  t.same(await store.create(id, 'jill', spec, Date.now() - liveMs - 3_600_000), { result: 'created' })
  // As if the tenant had made no job since: the index key itself near its end.
  await redis.expire(keys.tenantJobs('jill'), 60)
  t.equal(await store.claim(id, 'w1'), 'claimed', 'claimed an hour after a record made then would have expired')
  t.ok(
    (await redis.ttl(keys.tenantJobs('jill'))) > liveMs / 1000 - 60,
    'the index lives a live TTL from the claim, as the record does (code review: it lived from the last create)',
  )
  t.same(await store.create(newJobId(), 'jill', spec), { result: 'created' }, "the tenant's next job sweeps its sets")
  t.ok(await redis.zscore(keys.tenantJobs('jill'), id), 'the claimed job is still indexed')
  const listed = await store.list('jill', { limit: 10 })
  t.ok(
    listed.items.some((j) => j.id === id),
    'and listed',
  )
})

t.test("a claim renews the record's life, and an entry older than a record lives frees its running slot", async (t) => {
  // Found by review 19: a record lived a day and its retention from its create, renewed by
  // nothing; a job that waited long in the queue expired while it ran (its result lost),
  // and its entry in the tenant's running set, with no record left to end it, held the
  // tenant's running quota for good.
  const { redis, keys, spec } = storeOnRedis(t, 'test-claim-life')
  const store = new JobStore(redis, keys, 3600, { maxRunning: 1, maxQueued: 0, maxStoredBytes: 0 })
  const liveMs = (3600 + LIVE_TTL_BEYOND_RETENTION_SECONDS) * 1000
  const id = newJobId()
  t.same(await store.create(id, 'gina', spec), { result: 'created' })
  // As if it had waited in the queue for all but a minute of its record's life.
  await redis.expire(keys.job(id), 60)
  await redis.zadd(keys.tenantStored('gina'), Date.now() + 60_000, id)
  t.equal(await store.claim(id, 'w1'), 'claimed')
  t.ok((await redis.ttl(keys.job(id))) > liveMs / 1000 - 60, 'the record lives a live TTL from the claim')
  t.ok(Number(await redis.zscore(keys.tenantStored('gina'), id)) > Date.now() + liveMs - 60_000, 'its storage too')
  const stale = newJobId()
  await redis.zadd(keys.tenantRunning('hank'), Date.now() - liveMs - 10_000, stale)
  const next = newJobId()
  t.same(await store.create(next, 'hank', spec), { result: 'created' })
  t.equal(await store.claim(next, 'w1'), 'claimed', 'a running entry with no record left holds no slot')
  t.same(await redis.zrange(keys.tenantRunning('hank'), '0', '-1'), [next])
  const third = newJobId()
  await store.create(third, 'hank', spec)
  t.equal(await store.claim(third, 'w1'), 'throttled', 'a live one still does')
})
