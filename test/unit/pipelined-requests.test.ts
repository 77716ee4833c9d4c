import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import {
  limitConnections,
  MAX_IN_FLIGHT_PER_CONNECTION,
  MAX_WAITING_PER_CONNECTION,
} from '../../api/plugins/connection-limits.js'
import { createLogger } from '../../core/logger.js'
import { Metrics } from '../../core/metrics.js'

// A real HTTP server under the API's connection limits, and a client that pipelines raw
// HTTP/1.1 requests on one socket.
async function server(t: { teardown(fn: () => Promise<void>): void }) {
  let now = 0
  let most = 0
  let handled = 0
  const s = createServer()
  limitConnections(s, {
    maxConnections: 100,
    maxPerAddress: 100,
    maxPerTenant: 100,
    trustProxy: '',
    upgradeTimeoutMs: 1000,
    slowReaderMs: 10_000,
    log: createLogger('silent'),
    metrics: new Metrics(),
  })
  s.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handled++
    most = Math.max(most, ++now)
    setTimeout(() => {
      now--
      res.end(req.url)
    }, 20)
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => s.close(() => r())))
  return { port: (s.address() as AddressInfo).port, stats: () => ({ most, handled }) }
}

function pipelined(port: number, n: number): Promise<{ answers: string[]; closedEarly: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.on('data', (d) => {
      data += d
      if ((data.match(/\/r\d+/g) ?? []).length === n) socket.end()
    })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      const answers = data.match(/\/r\d+/g) ?? []
      resolve({ answers, closedEarly: answers.length < n })
    })
    socket.write(Array.from({ length: n }, (_, i) => `GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''))
  })
}

t.test('pipelined requests on one connection are handled a few at a time, answered in order', async (t) => {
  const s = await server(t)
  const n = MAX_IN_FLIGHT_PER_CONNECTION * 3
  const { answers, closedEarly } = await pipelined(s.port, n)
  t.notOk(closedEarly)
  t.same(
    answers,
    Array.from({ length: n }, (_, i) => `/r${i}`),
    'every one answered, in the order sent',
  )
  t.equal(
    s.stats().most,
    MAX_IN_FLIGHT_PER_CONNECTION,
    `at most ${MAX_IN_FLIGHT_PER_CONNECTION} in the handlers at once`,
  )
})

t.test('a connection with too many waiting is closed, and what waited is never handled', async (t) => {
  const s = await server(t)
  const n = MAX_IN_FLIGHT_PER_CONNECTION + MAX_WAITING_PER_CONNECTION + 100
  const { closedEarly } = await pipelined(s.port, n)
  t.ok(closedEarly, 'closed before all were answered')
  await new Promise((r) => setTimeout(r, 200))
  t.ok(s.stats().handled <= MAX_IN_FLIGHT_PER_CONNECTION + 1, `handled only those in flight (${s.stats().handled})`)
})

t.test('a connection handed over as an Upgrade that never becomes a WebSocket is closed', async (t) => {
  // Node takes its parser and timeouts off an upgraded socket: here an 'upgrade' listener
  // that fails to take it over (as a library throwing would), and one that does.
  const s = createServer()
  const limits = limitConnections(s, {
    maxConnections: 100,
    maxPerAddress: 100,
    maxPerTenant: 100,
    trustProxy: '',
    upgradeTimeoutMs: 300,
    slowReaderMs: 10_000,
    log: createLogger('silent'),
    metrics: new Metrics(),
  })
  const taken: import('node:net').Socket[] = []
  s.on('upgrade', (req: IncomingMessage, socket: import('node:net').Socket) => {
    if (req.url !== '/taken') return
    limits.becameWebSocket(socket)
    taken.push(socket)
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => s.close(() => r())))
  const port = (s.address() as AddressInfo).port
  const closedWithin = (path: string, ms: number) =>
    new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`),
      )
      socket.on('error', () => undefined)
      const timer = setTimeout(() => {
        socket.destroy()
        resolve(false)
      }, ms)
      socket.once('close', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  const [dropped, left] = await Promise.all([closedWithin('/dropped', 2000), closedWithin('/taken', 1000)])
  t.ok(dropped, 'an upgrade nobody took is closed after upgradeTimeoutMs')
  t.notOk(left, 'a WebSocket is left alone')
  for (const socket of taken) socket.destroy()
})
