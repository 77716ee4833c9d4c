import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { WebSocketServer } from 'ws'
import { Airlock } from '../../sdk/src/index.js'

// Found by review 21: a job's stream held every message its reader had not taken yet, with no
// bound, so a server that did not stop (or a reader far behind a big job) filled memory.

t.test(
  "a stream's reader far behind gets a new connection from its last event: nothing lost, memory bounded",
  async (t) => {
    const EVENTS = 300
    const data = 'x'.repeat(16 * 1024)
    const connections: { from: number; closedWith?: number }[] = []
    const server = createServer((req, res) => {
      // The stream token: any will do here.
      req.resume()
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}')
    })
    const wss = new WebSocketServer({ server })
    wss.on('connection', (ws, req) => {
      const from = Number(new URL(req.url ?? '', 'http://x').searchParams.get('from'))
      const conn: { from: number; closedWith?: number } = { from }
      connections.push(conn)
      ws.on('close', (code) => (conn.closedWith = code))
      // Every event after `from`, at once, as fast as the socket takes them.
      for (let seq = from + 1; seq <= EVENTS && ws.readyState === ws.OPEN; seq++)
        ws.send(JSON.stringify({ seq, ts: 0, type: 'log', stream: 'stdout', data }))
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ seq: EVENTS + 1, ts: 0, type: 'end', job: {} }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => {
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      server.close()
    })
    const airlock = new Airlock({
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      apiKey: 'k',
      maxAnswerBytes: 1024 * 1024,
    })
    const seqs: number[] = []
    for await (const event of airlock.jobs.stream('job_1')) {
      seqs.push(event.seq)
      // A reader slow at first: the server's ~5 MB outrun what the stream may hold for it.
      if (seqs.length === 1) await sleep(500)
    }
    t.same(
      seqs,
      Array.from({ length: EVENTS + 1 }, (_, i) => i + 1),
      'every event, once, in order',
    )
    t.ok(connections.length >= 2, `${connections.length} connections`)
    t.equal(connections[0]!.closedWith, 4009, 'the first closed by the reader, which fell behind')
    t.ok(connections[1]!.from > 1, `the next resumed after the last event taken (${connections[1]!.from})`)
  },
)
