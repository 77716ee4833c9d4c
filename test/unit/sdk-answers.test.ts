import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { Airlock, TimeoutError } from '../../sdk/src/index.js'

// Found by review 21: the SDK read a whole answer whatever its size, so a broken or hostile
// server that never stopped sending filled the caller's memory; and a time limit that ran
// out while the body came was reported as a broken connection.

async function serving(t: Test, send: (res: ServerResponse) => void): Promise<string> {
  const server = createServer((_req, res) => send(res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('an answer past maxAnswerBytes fails the call, and no more of it is read', async (t) => {
  let sent = 0
  const baseUrl = await serving(t, (res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    const more = () => {
      while (!res.destroyed && sent < 512 * 1024 * 1024 && res.write(chunk)) sent += chunk.length
      if (!res.destroyed && sent < 512 * 1024 * 1024) res.once('drain', more)
    }
    more()
  })
  const airlock = new Airlock({ baseUrl, apiKey: 'k', maxRetries: 0, maxAnswerBytes: 1024 * 1024 })
  const err = await airlock.jobs.list().catch((e: unknown) => e)
  t.match(err, { code: 'AIRLOCK_SDK_ANSWER_TOO_LARGE' })
  t.ok(sent < 64 * 1024 * 1024, `the server got to send ${sent} bytes, not its 512 MiB`)
  const artifact = await airlock.jobs.artifact('job_1', 'a.bin').catch((e: unknown) => e)
  t.match(artifact, { code: 'AIRLOCK_SDK_ANSWER_TOO_LARGE' }, 'binary answers too')
})

t.test('a body that trickles in past the time limit is a TimeoutError', async (t) => {
  const baseUrl = await serving(t, (res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write(' ')), 100)
  })
  const err = await new Airlock({ baseUrl, apiKey: 'k', maxRetries: 0, requestTimeoutMs: 800 }).jobs
    .list()
    .catch((e: unknown) => e)
  t.ok(err instanceof TimeoutError, `a TimeoutError (${(err as Error).constructor.name})`)
})
