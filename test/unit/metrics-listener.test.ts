import t, { type Test } from 'tap'
import { request } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { once } from 'node:events'
import { isScraperHost, startMetricsListener } from '../../api/metrics-listener.js'
import { createLogger } from '../../core/logger.js'
import { Metrics } from '../../core/metrics.js'

t.test('the Host names a scraper sends', async (t) => {
  const names = new Set(['prometheus-target', 'airlock-api'])
  for (const host of [
    'localhost',
    'LOCALHOST:9464',
    '127.0.0.1',
    '127.0.0.1:9464',
    '10.1.2.3:9464',
    '[::1]',
    '[::1]:9464',
    '[fd00::5]:9464',
    'airlock-api:9464',
    'Prometheus-Target',
    // HTTP/1.0 without a Host: no browser sends that.
    undefined,
  ])
    t.ok(isScraperHost(host, names), String(host))
  for (const host of [
    '',
    'evil.example',
    'evil.example:9464',
    'localhost.evil.example',
    '127.0.0.1.evil.example',
    'airlock-api.evil.example',
    '[evil.example]',
    '[127.0.0.1]',
    '::1',
    '[::1',
  ])
    t.notOk(isScraperHost(host, names), String(host))
})

async function listener(t: Test, metricsHost: string, metricsHostNames = '') {
  const config = {
    metricsPort: 0,
    metricsHost,
    metricsHostNames,
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

t.test('the metrics listener answers a scraper, never a page whose name resolves to it', async (t) => {
  for (const bound of ['127.0.0.1', '0.0.0.0']) {
    // Bound to all addresses in a container and published on the host's loopback (docker-compose).
    const { port, get } = await listener(t, bound, 'airlock-api')
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `airlock-api:${port}`]) {
      const res = await get('/metrics', host)
      t.equal(res.status, 200, `${bound}: ${host}`)
      t.match(res.body, /# HELP/, `${bound}: ${host}: the metrics`)
    }
    // A page whose name was made to resolve to 127.0.0.1 sends its own name (DNS rebinding).
    for (const host of [`rebind.example:${port}`, 'rebind.example', `127.0.0.1.rebind.example:${port}`]) {
      for (const path of ['/metrics', '/healthz']) {
        const res = await get(path, host)
        t.equal(res.status, 421, `${bound}: ${host}${path}`)
        t.equal(JSON.parse(res.body).code, 'AIRLOCK_ERR_MISDIRECTED', `${bound}: ${host}${path}: with a code`)
        t.notMatch(res.body, /airlock_/, 'and no metrics')
      }
    }
    // An HTTP/1.0 tool sends no Host at all.
    const raw = connect(port, '127.0.0.1')
    raw.end('GET /metrics HTTP/1.0\r\n\r\n')
    let answer = ''
    for await (const chunk of raw) answer += String(chunk)
    t.match(answer, /^HTTP\/1\.1 200 /, `${bound}: HTTP/1.0 without a Host`)
    t.match(answer, /# HELP/, `${bound}: HTTP/1.0 without a Host: the metrics`)
  }
})

t.test('the metrics listener takes no request body: the answer to one ends its connection', async (t) => {
  // Found by review 25: nothing here reads a body, and Node read and threw away whatever
  // came, for as long as it came, on each of the listener's connections.
  const { port } = await listener(t, '127.0.0.1')
  for (const head of [
    'POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000000\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n',
  ]) {
    const raw = connect(port, '127.0.0.1')
    raw.write(head)
    const trickle = setInterval(() => raw.write(head.includes('chunked') ? '1\r\na\r\n' : 'a'), 20)
    let answer = ''
    raw.on('error', () => undefined)
    raw.on('data', (chunk: Buffer) => {
      answer += String(chunk)
    })
    await once(raw, 'close')
    clearInterval(trickle)
    t.match(answer, /^HTTP\/1\.1 413 /, `${head.split('\r\n')[0]}: 413`)
    t.match(answer, /"code":"AIRLOCK_ERR_BODY_TOO_LARGE"/, 'with a code')
    t.match(answer, /\r\nconnection: close\r\n/i, 'and the connection closed, not read on')
  }
})
