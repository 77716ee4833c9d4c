import { createServer, type Server, type ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import type { Logger } from 'pino'
import type { Config } from '../core/config.js'
import type { ErrorCode } from '../core/errors.js'
import type { Metrics } from '../core/metrics.js'
import { announcesBody } from './plugins/body-encoding.js'
import { limitConnections } from './plugins/connection-limits.js'
import { DEFAULT_STREAM_LIMITS } from './services/stream-session.js'

/** Connections the metrics listener holds at once (a quarter of them from one address). */
const METRICS_MAX_CONNECTIONS = 64

/**
 * Whether a Host header may be answered: an IP address (a scraper that connects by
 * address: Prometheus on Kubernetes, a probe), `localhost`, or one of `names`. A browser
 * sends the name of the page's site, so a page whose name was made to resolve to this
 * machine (DNS rebinding) sends its own name, which is none of these. A request with no
 * Host at all (an HTTP/1.0 tool; Node refuses HTTP/1.1 without one) is answered: a browser
 * always sends one.
 */
export function isScraperHost(host: string | undefined, names: ReadonlySet<string> = new Set()): boolean {
  if (host === undefined) return true
  if (!host) return false
  const h = host.toLowerCase()
  // An IPv6 address comes in brackets ([::1]:9464); anything else is a name or an IPv4
  // address, with or without a port.
  if (h.startsWith('[')) return /^\[[^\]]+\](:\d*)?$/.test(h) && isIP(h.slice(1, h.indexOf(']'))) === 6
  const name = h.replace(/:\d*$/, '')
  return isIP(name) === 4 || name === 'localhost' || names.has(name)
}

/** What the metrics listener serves, and where. */
export interface MetricsListenerOptions {
  config: Pick<
    Config,
    'metricsPort' | 'metricsHost' | 'metricsHostNames' | 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs'
  >
  metrics: Metrics
  log: Logger
  /** A worker's isolation, for /readyz; an API-only process has none and no /readyz. */
  isolation?: () => { ok: boolean; reason?: string | null } | undefined
}

/**
 * Every process serves /metrics on a listener of its own, off the public port (a
 * worker-only process also /healthz and /readyz: ready while it can isolate jobs, so an
 * orchestrator sees a fail-closed worker). Nobody authenticates here, and /metrics names
 * tenants: it answers only a Host a scraper would send (isScraperHost), so a web page
 * whose name was made to resolve to this machine cannot read it from a browser.
 */
export function startMetricsListener({ config, metrics, log, isolation }: MetricsListenerOptions): Server {
  const names = new Set(
    config.metricsHostNames
      .split(',')
      .map((n) => n.trim().toLowerCase())
      .filter(Boolean),
  )
  // A client that trickles its headers or its request is timed out as on the API's port.
  const timeouts = {
    requestTimeout: config.requestTimeoutMs,
    headersTimeout: Math.min(config.headersTimeoutMs, config.requestTimeoutMs),
    connectionsCheckingInterval: 1000,
  }
  const server = createServer(timeouts, (req, res) => {
    if (announcesBody(req.headers)) {
      // Nothing here takes a body; kept, it would be read and thrown away for as long as it
      // came (found by review 25). The connection ends with the answer.
      res.once('finish', () => req.socket.destroy())
      res.setHeader('connection', 'close')
      json(res, 413, 'AIRLOCK_ERR_BODY_TOO_LARGE', 'this listener takes no request body')
    } else if (!isScraperHost(req.headers.host, names)) {
      json(
        res,
        421,
        'AIRLOCK_ERR_MISDIRECTED',
        'this listener answers requests for an IP address, localhost or AIRLOCK_METRICS_HOST_NAMES',
      )
    } else if (req.url === '/metrics') {
      void metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (err: unknown) => {
          log.error({ err }, 'metrics could not be collected')
          json(res, 500, 'AIRLOCK_ERR_INTERNAL', 'internal error')
        },
      )
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    } else if (req.url === '/readyz' && isolation) {
      const now = isolation()
      res
        .writeHead(now?.ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: !!now?.ok, reason: now?.reason ?? null }))
    } else {
      json(res, 404, 'AIRLOCK_ERR_ROUTE_NOT_FOUND', 'this port serves /metrics, /healthz and /readyz')
    }
  })
  // The same process's descriptors: a scraper needs a few connections, never thousands.
  limitConnections(server, {
    maxConnections: METRICS_MAX_CONNECTIONS,
    maxPerAddress: METRICS_MAX_CONNECTIONS / 4,
    // Nobody authenticates here.
    maxPerTenant: METRICS_MAX_CONNECTIONS,
    trustProxy: '',
    // It has no WebSocket: Node closes an upgrade at once.
    upgradeTimeoutMs: config.headersTimeoutMs,
    slowReaderMs: DEFAULT_STREAM_LIMITS.slowClientGraceMs,
    log,
    metrics,
  })
  server.keepAliveTimeout = config.keepAliveTimeoutMs
  server.listen(config.metricsPort, config.metricsHost)
  return server
}

/** An answer of the metrics port in the API's error shape. */
function json(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ statusCode: status, code, message }))
}
