import t, { type Test } from 'tap'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { isLoopbackAddress, isLoopbackHost, startMetricsListener } from '../../api/metrics-listener.js'
import { createLogger } from '../../core/logger.js'
import { Metrics } from '../../core/metrics.js'

t.test('loopback names and addresses', async (t) => {
  for (const host of [
    'localhost',
    'LOCALHOST:9464',
    '127.0.0.1',
    '127.0.0.1:9464',
    '127.1.2.3:80',
    '[::1]',
    '[::1]:9464',
  ])
    t.ok(isLoopbackHost(host), host)
  for (const host of [
    undefined,
    '',
    'evil.example',
    'evil.example:9464',
    'localhost.evil.example',
    '127.0.0.1.evil.example',
    '10.0.0.1:9464',
    '[::2]:9464',
    '0.0.0.0',
    '[::1',
  ])
    t.notOk(isLoopbackHost(host), String(host))
  t.ok(isLoopbackAddress('127.0.0.1') && isLoopbackAddress('::1') && isLoopbackAddress('localhost'))
  t.notOk(isLoopbackAddress('0.0.0.0') || isLoopbackAddress('::') || isLoopbackAddress('10.1.2.3'))
})

async function listener(t: Test, metricsHost: string) {
  const config = {
    metricsPort: 0,
    metricsHost,
    requestTimeoutMs: 5000,
    headersTimeoutMs: 5000,
    keepAliveTimeoutMs: 1000,
  }
  const server = startMetricsListener({ config, metrics: new Metrics(), log: createLogger('silent') })
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const get = (path: string, host: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers: { host, connection: 'close' } }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
      req.on('error', reject).end()
    })
  return { port, get }
}

t.test('bound to loopback, the metrics listener answers only requests that name loopback', async (t) => {
  const { port, get } = await listener(t, '127.0.0.1')
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost']) {
    const res = await get('/metrics', host)
    t.equal(res.status, 200, host)
    t.match(res.body, /# HELP/, `${host}: the metrics`)
  }
  // A page whose name was made to resolve to 127.0.0.1 sends its own name (DNS rebinding).
  for (const host of [`rebind.example:${port}`, 'rebind.example', `127.0.0.1.rebind.example:${port}`]) {
    for (const path of ['/metrics', '/healthz']) {
      const res = await get(path, host)
      t.equal(res.status, 421, `${host}${path}`)
      t.equal(JSON.parse(res.body).code, 'AIRLOCK_ERR_MISDIRECTED', `${host}${path}: with a code`)
      t.notMatch(res.body, /airlock_/, 'and no metrics')
    }
  }
})

t.test('bound elsewhere (a pod scraped by its address or name), any Host is answered', async (t) => {
  const { get } = await listener(t, '0.0.0.0')
  const res = await get('/metrics', 'airlock-worker.airlock-system.svc:9464')
  t.equal(res.status, 200)
})
