import { randomBytes } from 'node:crypto'
import { get as httpGet, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { loadConfig } from '../../core/config.js'
import { EVENT_READ_BYTES, EVENT_READ_ENTRIES, JobEventReader } from '../../core/job-events.js'
import { JobOutputReader, type TakeBudget } from '../../core/job-output.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { JobStore, newJobId } from '../../core/job-store.js'
import { redisKeys } from '../../core/redis-keys.js'
import { OutputBudget } from '../../api/services/output-budget.js'
import { OutputWriter } from '../../api/services/output-writer.js'
import { decorateTenant } from '../../api/plugins/auth.js'
import { redisUrl } from '../helper.js'

/** A connection and a key prefix of the test's own, its keys removed when it ends. */
function freshRedis(t: { teardown(fn: () => unknown): void }, name: string) {
  const redis = new Redis(redisUrl())
  const keys = redisKeys(`test-job-${name}-${randomBytes(4).toString('hex')}`)
  t.teardown(async () => {
    const left = await redis.keys(`${keys.prefix}*`)
    if (left.length > 0) await redis.del(...left)
    redis.disconnect()
  })
  return { redis, keys }
}

// A job's record can carry MBs of step results (64 test cases' previews, compile output).
// Found by a hostile review: 1,000 pipelined reads of such a job parsed each record before
// any budget was taken, 147 MB -> 2.36 GB. The API reads a job's head (a few hundred bytes)
// first, and its step results only once the output budget holds what they will cost.
t.test("a job's step results are read only under the output budget", async (t) => {
  const { redis, keys } = freshRedis(t, 'records')
  const store = new JobStore(redis, keys, 3600)
  const id = newJobId()
  await store.create(id, 'alice', resolveJobSpec({ runtime: 'bash', source: 'true' }, loadConfig({})))
  const preview = '\u0000'.repeat(4096)
  const tests = Array.from({ length: 32 }, () => ({
    status: 'passed',
    exitCode: 0,
    signal: null,
    timeMs: 1,
    stdout: preview,
    stderr: preview,
    truncated: false,
  }))
  const stored = JSON.stringify(tests)
  await redis.hset(keys.job(id), 'status', 'succeeded', 'tests', stored)

  const head = await store.headForTenant(id, 'alice')
  t.ok(head, "the tenant's job")
  t.notOk('tests' in head!.job, 'its head carries no step results')
  t.equal(head!.detailChars, stored.length, 'but knows what they will cost')
  t.equal(await store.headForTenant(id, 'bob'), undefined, "another tenant's job is none")

  // The tenant's share of the budget is held by another reader: the record waits, unread.
  const budget = new OutputBudget(16 * 1024 * 1024, 300)
  const writer = new OutputWriter(
    store,
    new JobOutputReader(redis, keys),
    new JobEventReader(redis, keys),
    budget,
    1000,
  )
  const other = await budget.take('alice', 8 * 1024 * 1024)
  await t.rejects(writer.jobJson(head!).next(), { code: 'AIRLOCK_ERR_OUTPUT_BUSY' }, 'a busy budget answers 503')
  await t.rejects(
    writer.details(head!, (all) => all),
    { code: 'AIRLOCK_ERR_OUTPUT_BUSY' },
  )
  t.equal(budget.inUse, 8 * 1024 * 1024, 'and holds nothing while it waits')
  // The answer to a submission that waited for its job: the job has run, and a 503 would
  // have the client submit it again. It waits its turn past the budget's wait instead.
  const patientJob = writer.jobJson(head!, true)
  const patient = patientJob.next()
  const patientDetails = writer.details(head!, (all) => all.slice(0, 1), true)
  let settled = false
  void Promise.allSettled([patient, patientDetails]).then(() => (settled = true))
  await new Promise((r) => setTimeout(r, 600))
  t.notOk(settled, "a patient answer is still waiting, twice the budget's wait later")
  other.release()
  t.match((await patient).value, /^\{/, 'and goes on once there is room')
  await patientJob.return(undefined)
  t.equal((await patientDetails).job.tests.length, 1)

  const parts: string[] = []
  for await (const part of writer.jobJson(head!)) parts.push(part)
  const job = JSON.parse(parts.join('')) as { tests: unknown[]; status: string }
  t.equal(job.tests.length, 32, 'with the budget free, the record is read whole')
  t.equal(job.status, 'succeeded')
  const judged = await writer.details(head!, (all) => all.slice(0, 1))
  t.equal(judged.job.tests.length, 1, 'an adapter keeps only the cases its answer uses')
  t.equal(budget.inUse, 0, 'every hold given back')
})

// Found by the fifth hostile review: a job's paths can make its artifacts' list ~280 KB
// (128 entries, quotes doubled by JSON), read and parsed with the head before any budget
// was taken; 1,000 slow readers of one such job took the process from 209 MB to 1.09 GB.
t.test("a job's artifacts' list is read only under the output budget, as its step results are", async (t) => {
  const { redis, keys } = freshRedis(t, 'artifacts')
  const store = new JobStore(redis, keys, 3600)
  const id = newJobId()
  await store.create(id, 'alice', resolveJobSpec({ runtime: 'bash', source: 'true' }, loadConfig({})))
  const dir = '"'.repeat(250)
  const list = Array.from({ length: 124 }, (_, i) => ({
    path: `${dir}/${dir}/${dir}/${dir}/f${i}`,
    bytes: 0,
    contentType: 'application/octet-stream',
  }))
  const stored = JSON.stringify(list)
  await redis.hset(keys.job(id), 'status', 'succeeded', 'artifacts', stored)

  const head = await store.headForTenant(id, 'alice')
  t.notOk('artifacts' in head!.job, 'its head carries no artifacts')
  t.equal(head!.artifactChars, stored.length, 'but knows what their list will cost')
  t.equal(head!.detailChars, stored.length, 'and counts it with what a whole read costs')
  t.ok(stored.length > 240_000, `the list is ${stored.length} characters`)

  const budget = new OutputBudget(16 * 1024 * 1024, 300)
  const writer = new OutputWriter(
    store,
    new JobOutputReader(redis, keys),
    new JobEventReader(redis, keys),
    budget,
    1000,
  )
  const other = await budget.take('alice', 7 * 1024 * 1024)
  await t.rejects(writer.jobJson(head!).next(), { code: 'AIRLOCK_ERR_OUTPUT_BUSY' }, 'a busy budget answers 503')
  await t.rejects(
    writer.findArtifact(head!, list[3]!.path),
    { code: 'AIRLOCK_ERR_OUTPUT_BUSY' },
    'and so does an artifact',
  )
  t.equal(budget.inUse, 7 * 1024 * 1024, 'holding nothing while they wait')
  other.release()
  const found = await writer.findArtifact(head!, list[3]!.path)
  t.equal(found?.index, 3, 'with room, the artifact is found in the list')
  t.equal(await writer.findArtifact(head!, 'nope'), undefined)
  const parts: string[] = []
  for await (const part of writer.jobJson(head!)) parts.push(part)
  t.same((JSON.parse(parts.join('')) as { artifacts: unknown[] }).artifacts, list, 'and the job has its whole list')
  t.equal(budget.inUse, 0, 'every hold given back')
})

// A program alternating stdout and stderr a byte at a time makes an event per byte: read
// four at a time, 10,000 of them were 2,500 round trips. A bounded read takes many small
// events at once, and stops soon after big ones pass its bytes.
t.test('a bounded read of events takes many small ones at once and few big ones', async (t) => {
  const { redis, keys } = freshRedis(t, 'events')
  const reader = new JobEventReader(redis, keys)
  const id = newJobId()
  const add = (seq: number, data: string) =>
    redis.xadd(keys.jobEvents(id), `${seq}-0`, 'type', 'log', 'stream', 'stdout', 'data', data, 'seq', seq, 'ts', 0)
  for (let seq = 1; seq <= 600; seq++) await add(seq, 'x')
  for (let seq = 601; seq <= 610; seq++) await add(seq, 'y'.repeat(60_000))
  const first = await reader.within(id, 0)
  t.equal(first.length, EVENT_READ_ENTRIES, 'small events: as many as a read takes, in one round trip')
  t.same(
    first.map((e) => e.seq),
    Array.from({ length: EVENT_READ_ENTRIES }, (_, i) => i + 1),
    'in order, from the first',
  )
  const rest = await reader.within(id, 600)
  t.equal(rest.length, Math.ceil(EVENT_READ_BYTES / 60_000), 'big ones: stops after the one that passes its bytes')
  t.equal(rest[0]?.seq, 601, 'after the seq asked for')
  t.same(await reader.within(id, 610), [], 'none after the last')
})

/** A job of alice's that a worker has claimed, on a Redis prefix of the test's own: its log may grow. */
async function runningJob(t: Test, name: string) {
  const { redis, keys } = freshRedis(t, name)
  const store = new JobStore(redis, keys, 3600)
  const id = newJobId()
  await store.create(id, 'alice', resolveJobSpec({ runtime: 'bash', source: 'true' }, loadConfig({})))
  t.equal(await store.claim(id, 'w1'), 'claimed')
  return { redis, keys, store, id }
}

/** The engine's collector, to show what a waiting reader still keeps. */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

/** A budget that lets `through` reads take their hold, and holds every later one until `open`. */
function gatedTake(through: number): { take: TakeBudget; open: () => void; takes: () => number } {
  let takes = 0
  let open!: () => void
  const blocked = new Promise<void>((resolve) => (open = resolve))
  const take: TakeBudget = async () => {
    if (takes++ >= through) await blocked
    return { shrink: () => undefined, release: () => undefined }
  }
  return { take, open: () => open(), takes: () => takes }
}

// Found by review 22: 250 paused NDJSON readers of a job of control characters took the
// API from 260 MB to 1.2 GB against a 32 MB output budget (and killed it under a 300 MB
// heap): a reader waiting for its next read's turn still held its last read's events and
// lines, which its hold no longer counted.
t.test('an NDJSON reader waiting for its next read keeps nothing of its last one', async (t) => {
  const gc = exposedGc()
  const { redis, keys, store, id } = await runningJob(t, 'ndjson')
  const chunk = '\u0001'.repeat(64 * 1024)
  for (let i = 0; i < 4; i++) await store.appendLog(id, 'stdout', chunk)
  const events = new JobEventReader(redis, keys)
  const read: WeakRef<object>[][] = []
  const within = events.within.bind(events)
  events.within = async (...args) => {
    const batch = await within(...args)
    read.push(batch.map((e) => new WeakRef(e)))
    return batch
  }
  const budget = new OutputBudget(32 * 1024 * 1024, 300)
  const writer = new OutputWriter(store, new JobOutputReader(redis, keys), events, budget, 1000)
  const head = await store.headForTenant(id, 'alice')
  const lines = writer.ndjson(head!)
  const first = await lines.next()
  t.ok(first.value.length > 6 * 64 * 1024, 'the first read is a few escaped events')
  t.ok(budget.heldBy('alice') >= 2 * first.value.length, 'held while it is on its way: its lines counted')
  // Other tenants fill the budget, so that the reader's next read waits.
  const bob = await budget.take('bob', 16 * 1024 * 1024)
  const carol = await budget.take('carol', 16 * 1024 * 1024 - budget.heldBy('alice'))
  const second = lines.next()
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
  t.equal(read.length, 1, 'the next read waits for room')
  t.equal(budget.heldBy('alice'), 0, 'holding nothing')
  gc()
  t.same(
    read[0]!.map((ref) => ref.deref() === undefined),
    read[0]!.map(() => true),
    "and keeping none of the last read's events",
  )
  bob.release()
  carol.release()
  const rest = [first.value, (await second).value]
  for await (const line of lines) rest.push(line)
  const all = rest
    .join('')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; data?: string })
  t.equal(all.filter((e) => e.type === 'log').length, 4, 'every event arrives once the budget has room')
  t.equal(budget.inUse, 0, 'every hold given back')
})

// The class of review 22's NDJSON finding, in the readers of output as text (GET /logs,
// a job's stdout and stderr in its JSON, Judge0's and Piston's answers): a read's bytes
// (up to 320 KB, outside the heap) were kept while the next read waited for budget.
t.test("a reader of output waiting for its next read keeps none of its last read's bytes", async (t) => {
  const gc = exposedGc()
  const { redis, keys, store, id } = await runningJob(t, 'pieces')
  for (let i = 0; i < 4; i++) await store.appendLog(id, 'stdout', String(i).repeat(64 * 1024))
  await redis.set(keys.jobOutput(id, 'stdout'), 'k'.repeat(256 * 1024))
  const reads: WeakRef<Buffer>[] = []
  const client = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  for (const [name, bytes] of [
    ['airlockJob_readOutputBuffer', (r: unknown) => (r as Buffer[])[1]!],
    ['getrangeBuffer', (r: unknown) => r as Buffer],
  ] as const) {
    const read = client[name]!.bind(redis)
    client[name] = async (...args: unknown[]) => {
      const reply = await read(...args)
      reads.push(new WeakRef(bytes(reply)))
      return reply
    }
  }
  await redis.set(keys.jobArtifact(id, 0), Buffer.alloc(256 * 1024, 7))
  const output = new JobOutputReader(redis, keys)
  const readers = {
    events: (take: TakeBudget) => output.pieces(id, 'events', 'stdout', take),
    keys: (take: TakeBudget) => output.pieces(id, 'keys', 'stdout', take),
    artifact: (take: TakeBudget) => output.artifactBytes(id, 0, take),
  }
  for (const place of ['events', 'keys', 'artifact'] as const) {
    reads.length = 0
    const { take, open } = gatedTake(1)
    const pieces: AsyncGenerator<string | Buffer> = readers[place](take)
    // Lengths only: a Buffer piece is the read's own bytes, which the test must not keep either.
    let got = 0
    // The first read's pieces, until the next read waits for its hold.
    for (;;) {
      const next = pieces.next()
      const piece = await Promise.race([next, new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 200))])
      if (piece === 'waiting') {
        for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
        gc()
        t.equal(reads.length, 1, `${place}: one read made`)
        t.equal(reads[0]!.deref(), undefined, `${place}: its bytes are let go of while the next read waits`)
        open()
        const rest = await next
        if (!rest.done) got += rest.value.length
        break
      }
      if (piece.done) break
      got += piece.value.length
    }
    for await (const piece of pieces) got += piece.length
    t.equal(got, 256 * 1024, `${place}: and every byte is read once the next read may go`)
  }
})

// Found by review 24: an answer's first piece was held by `send`'s own frame until the
// answer ended, uncounted: 130 paused NDJSON readers kept 92 MB of first pieces so, and
// 400 readers took the API past a 300 MB heap. Shown with an artifact, whose pieces are
// the read's own Buffers (a string cannot be watched for collection).
t.test("an answer's first piece is let go of once it has left, while the answer goes on", async (t) => {
  const gc = exposedGc()
  const { redis, keys } = freshRedis(t, 'send')
  const store = new JobStore(redis, keys, 3600)
  const id = newJobId()
  await redis.set(keys.jobArtifact(id, 0), Buffer.alloc(256 * 1024, 7))
  const reads: WeakRef<Buffer>[] = []
  const getrange = redis.getrangeBuffer.bind(redis)
  redis.getrangeBuffer = (async (key: string, from: number, to: number) => {
    const bytes = await getrange(key, from, to)
    reads.push(new WeakRef(bytes))
    return bytes
  }) as typeof redis.getrangeBuffer
  const output = new JobOutputReader(redis, keys)
  const writer = new OutputWriter(store, output, new JobEventReader(redis, keys), new OutputBudget(1 << 24), 10_000)
  const { take, open, takes } = gatedTake(1)
  const app = Fastify()
  decorateTenant(app)
  app.get('/artifact', (_request, reply) =>
    writer.send(reply, 200, 'application/octet-stream', output.artifactBytes(id, 0, take)),
  )
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const res = await new Promise<IncomingMessage>((resolve) =>
    httpGet(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/artifact`, resolve),
  )
  let got = 0
  res.on('data', (chunk: Buffer) => (got += chunk.length))
  while (got < 128 * 1024) await new Promise((r) => setTimeout(r, 10))
  for (let i = 0; i < 3 && takes() < 2; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(takes(), 2, 'the first piece has left and the next read waits')
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
  gc()
  t.equal(reads[0]!.deref(), undefined, 'and nothing keeps the first piece')
  open()
  await new Promise((resolve) => res.on('end', resolve))
  t.equal(got, 256 * 1024, 'the answer goes on to its end')
})
