import t from 'tap'
import type { Job } from '../../core/job.js'
import type { JobEvent } from '../../core/job-events.js'
import { build, TENANTS } from '../helper.js'
import { freePort, startAirlock } from '../processes.js'
import { openStream, strip } from '../ws-client.js'

async function refusedWith(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise
    return undefined
  } catch (err) {
    return (err as { statusCode?: number }).statusCode
  }
}

const auth = (tenant: keyof typeof TENANTS = 'alice') => ({ authorization: `Bearer ${TENANTS[tenant]}` })

function seqs(events: JobEvent[]): number[] {
  return events.map((e) => e.seq)
}

t.test('live logs over WebSocket', async (t) => {
  const h = await build(t, { listen: true })
  const submit = async (body: Record<string, unknown>) => {
    const res = await h.request('POST', '/v1/jobs', body)
    t.equal(res.statusCode, 202)
    return res.json<{ id: string }>().id
  }

  t.test('output arrives while the job runs, in order, numbered without gaps', async (t) => {
    const id = await submit({
      runtime: 'python',
      source: 'import time, sys\nprint("first")\nprint("to stderr", file=sys.stderr)\ntime.sleep(2)\nprint("second")',
    })
    const got = await openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth())
    const events = got.events
    const first = events.find((e) => e.type === 'log' && e.data.includes('first'))
    const end = events.find((e) => e.type === 'end')
    t.ok(first && end, 'got the first line and the end')
    t.ok(end!.at - first!.at >= 1500, `the first line arrived ${end!.at - first!.at} ms before the end`)
    t.same(
      seqs(strip(got)),
      events.map((_, i) => i + 1),
      'seq counts 1, 2, 3... with no gap',
    )
    t.same(
      strip(got).map((e) =>
        e.type === 'log' ? `${e.stream}:${e.data}` : e.type === 'status' ? `status:${e.status}` : 'end',
      ),
      [
        'status:queued',
        'status:running',
        'stdout:first\n',
        'stderr:to stderr\n',
        'stdout:second\n',
        'status:succeeded',
        'end',
      ],
    )
    t.equal(got.close.code, 1000, 'closed normally after end')
    const job = (end as Extract<JobEvent, { type: 'end' }>).job
    t.match(job, { id, status: 'succeeded', stdout: 'first\nsecond\n', stderr: 'to stderr\n' })

    t.test('a late client gets exactly the same messages from the start', async (t) => {
      const late = await openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth())
      t.same(strip(late), strip(got))
      t.equal(late.close.code, 1000)
    })

    t.test('a resumed client gets exactly the messages after `from`', async (t) => {
      for (const from of [1, 3, 5]) {
        const resumed = await openStream(h.baseUrl, `/v1/jobs/${id}/stream?from=${from}`, auth())
        t.same(
          strip(resumed),
          strip(got).filter((e) => e.seq > from),
          `from=${from}`,
        )
      }
    })

    t.test('the whole log is readable as text and as NDJSON', async (t) => {
      const text = await h.request('GET', `/v1/jobs/${id}/logs`)
      t.equal(text.statusCode, 200)
      t.match(text.headers['content-type'], /^text\/plain/)
      t.equal(text.body, 'first\nto stderr\nsecond\n')
      const nd = await h.app.inject({
        method: 'GET',
        url: `/v1/jobs/${id}/logs`,
        headers: { ...auth(), accept: 'application/x-ndjson' },
      })
      t.match(nd.headers['content-type'], /^application\/x-ndjson/)
      const lines = nd.body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as JobEvent)
      t.same(lines, strip(got))
    })
  })

  t.test('a job with no output still ends with end', async (t) => {
    const id = await submit({ runtime: 'bash', source: 'true' })
    const got = await openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth())
    t.same(
      strip(got).map((e) => e.type),
      ['status', 'status', 'status', 'end'],
    )
    t.equal(got.close.code, 1000)
  })

  t.test('a cancelled queued job ends its stream too', async (t) => {
    const res = await h.request('POST', '/v1/jobs', {
      runtime: 'bash',
      source: 'sleep 30',
      limits: { timeoutMs: 60_000 },
    })
    const { id } = res.json<{ id: string }>()
    const watching = openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth())
    await h.poll(id, (j: Job) => j.status === 'running')
    await h.request('DELETE', `/v1/jobs/${id}`)
    const got = await watching
    const end = strip(got).pop() as Extract<JobEvent, { type: 'end' }>
    t.equal(end.type, 'end')
    t.equal(end.job.status, 'cancelled')
  })

  t.test('other tenants and clients without a key are refused before the upgrade', async (t) => {
    const id = await submit({ runtime: 'bash', source: 'echo secret' })
    t.equal(await refusedWith(openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth('bob'))), 404)
    t.equal(await refusedWith(openStream(h.baseUrl, `/v1/jobs/${id}/stream`)), 401)
    t.equal(await refusedWith(openStream(h.baseUrl, `/v1/jobs/${id}/stream?from=-1`, auth())), 400)
    const logs = await h.request('GET', `/v1/jobs/${id}/logs`, undefined, 'bob')
    t.equal(logs.statusCode, 404)
  })

  t.test('a browser opens the stream with a single-use token instead of its key', async (t) => {
    const id = await submit({ runtime: 'bash', source: 'echo via token' })
    const other = await submit({ runtime: 'bash', source: 'true' })
    const issued = await h.request('POST', `/v1/jobs/${id}/stream-tokens`)
    t.equal(issued.statusCode, 201)
    const { token } = issued.json<{ token: string }>()
    t.equal(
      await refusedWith(openStream(h.baseUrl, `/v1/jobs/${other}/stream?token=${token}`)),
      401,
      'not for another job (and now used up)',
    )
    const second = (await h.request('POST', `/v1/jobs/${id}/stream-tokens`)).json<{ token: string }>().token
    const got = await openStream(h.baseUrl, `/v1/jobs/${id}/stream?token=${second}`)
    t.ok(strip(got).some((e) => e.type === 'log' && e.data === 'via token\n'))
    t.equal(
      await refusedWith(openStream(h.baseUrl, `/v1/jobs/${id}/stream?token=${second}`)),
      401,
      'a token opens one connection only',
    )
    const bobToken = await h.request('POST', `/v1/jobs/${id}/stream-tokens`, undefined, 'bob')
    t.equal(bobToken.statusCode, 404, "bob cannot get a token for alice's job")
  })
})

t.test('two API processes on one Redis both stream the same job', async (t) => {
  const h = await build(t, { listen: true })
  const port = await freePort()
  const second = startAirlock('api', {
    PORT: String(port),
    REDIS_URL: h.config.redisUrl,
    AIRLOCK_REDIS_PREFIX: h.config.redisPrefix,
    AIRLOCK_API_KEYS: h.config.apiKeys,
  })
  t.teardown(() => void second.kill('SIGTERM'))
  const otherUrl = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    const ok = await fetch(`${otherUrl}/healthz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (i > 100) throw new Error('the second API process did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  const res = await fetch(`${otherUrl}/v1/jobs`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({
      runtime: 'python',
      source: 'import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)',
    }),
  })
  t.equal(res.status, 202, 'submitted through the second process')
  const { id } = (await res.json()) as { id: string }
  const [viaFirst, viaSecond] = await Promise.all([
    openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth()),
    openStream(otherUrl, `/v1/jobs/${id}/stream`, auth()),
  ])
  const closes = `closed ${viaFirst.close.code} "${viaFirst.close.reason}" and ${viaSecond.close.code} "${viaSecond.close.reason}", second process ${second.exitCode === null ? 'running' : `exited ${second.exitCode}`}`
  t.same(strip(viaFirst), strip(viaSecond), `both replicas deliver the same messages (${closes})`)
  t.equal(
    strip(viaFirst)
      .filter((e) => e.type === 'log')
      .map((e) => (e as { data: string }).data)
      .join(''),
    '0\n1\n2\n',
  )
})

/**
 * A finished job of ~9 MB of output (well past what the kernel holds for a paused
 * loopback socket: the sender's buffer autotunes up to 4 MiB, so the server's own queue
 * must grow), and a stream of it whose client stops reading at once for `pauseMs`.
 */
async function pausedStream(h: Awaited<ReturnType<typeof build>>, pauseMs: number) {
  const res = await h.request('POST', '/v1/jobs', {
    runtime: 'python',
    source:
      'import sys\nfor i in range(9000):\n    sys.stdout.write(f"{i:06d}" + "x" * 1000 + "\\n")\n    sys.stdout.flush()',
    limits: { outputBytes: 10 * 1024 * 1024, timeoutMs: 60_000 },
  })
  const { id } = res.json<{ id: string }>()
  await h.poll(id, (j: Job) => j.status !== 'queued' && j.status !== 'running', 60_000)
  const stream = await openStream(h.baseUrl, `/v1/jobs/${id}/stream`, auth(), (ws) => {
    const sock = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket
    sock.pause()
    setTimeout(() => sock.resume(), pauseMs)
  })
  return { id, stream }
}

t.test('a client that takes nothing of a batch is dropped with 4001 even while its queue is short', async (t) => {
  // The queue limit is out of reach here: only the batch that never leaves can cut it.
  const h = await build(t, {
    listen: true,
    streamLimits: { maxBufferedBytes: 256 * 1024 * 1024, slowClientGraceMs: 300 },
  })
  const { id, stream: stalled } = await pausedStream(h, 3000)
  t.equal(stalled.close.code, 4001, `closed as slow consumer, not held open (${stalled.close.reason})`)
  const last = stalled.events[stalled.events.length - 1]?.seq ?? 0
  t.ok(last < 9000, `it was cut before the end (${last} events)`)
  const rest = await openStream(h.baseUrl, `/v1/jobs/${id}/stream?from=${last}`, auth())
  t.equal(rest.close.code, 1000, 'and resumes to the end')
})

t.test('a client that cannot keep up is dropped with 4001 and resumes with from, without gaps', async (t) => {
  const h = await build(t, { listen: true, streamLimits: { maxBufferedBytes: 64 * 1024, slowClientGraceMs: 300 } })
  const { id, stream: slow } = await pausedStream(h, 2000)
  t.equal(slow.close.code, 4001, `closed as slow consumer (${slow.close.reason})`)
  t.match(slow.close.reason, /from/)
  const last = slow.events[slow.events.length - 1]?.seq ?? 0
  const rest = await openStream(h.baseUrl, `/v1/jobs/${id}/stream?from=${last}`, auth())
  t.equal(rest.close.code, 1000)
  const all = [...strip(slow), ...strip(rest)]
  t.same(
    seqs(all),
    all.map((_, i) => i + 1),
    'together the two connections got every message once',
  )
  const text = all.map((e) => (e.type === 'log' ? e.data : '')).join('')
  t.equal(text, (await h.request('GET', `/v1/jobs/${id}/logs`)).body)
  t.equal(text.split('\n').length - 1, 9000)
})
