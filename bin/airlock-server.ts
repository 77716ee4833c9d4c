import { createServer, type ServerResponse } from 'node:http'
import { buildApp } from '../api/app.js'
import { limitConnections } from '../api/plugins/connection-limits.js'
import { DEFAULT_STREAM_LIMITS } from '../api/services/stream-session.js'
import { ConfigError, loadConfig, type Config } from '../core/config.js'
import type { ErrorCode } from '../core/errors.js'
import { createLogger } from '../core/logger.js'
import { Metrics } from '../core/metrics.js'
import { createExecutor } from '../worker/executors/create-executor.js'
import { WorkerService } from '../worker/worker-service.js'

/** Connections the metrics listener holds at once (a quarter of them from one address). */
const METRICS_MAX_CONNECTIONS = 64

/**
 * Entry point. `--role=all` (the default, `npm start`) runs API + worker + local
 * executor in one process; `--role=api` and `--role=worker` run one side each, for
 * scaling out.
 */
type Role = 'all' | 'api' | 'worker'

function parseRole(argv: string[]): Role {
  const arg = argv.find((a) => a.startsWith('--role='))
  const role = arg ? arg.slice('--role='.length) : 'all'
  if (role !== 'all' && role !== 'api' && role !== 'worker') {
    console.error(`unknown --role=${role}; use all, api or worker`)
    process.exit(2)
  }
  return role
}

async function main(): Promise<void> {
  const role = parseRole(process.argv.slice(2))
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }
  const logger = createLogger(config.logLevel, { role })
  const metrics = new Metrics({ processMetrics: true })
  const stops: (() => Promise<void>)[] = []

  let worker: WorkerService | undefined
  if (role === 'all' || role === 'worker') {
    worker = new WorkerService(
      config,
      createExecutor(config, logger, { metrics }),
      logger.child({ component: 'worker' }),
      metrics,
    )
    await worker.start()
    stops.push(() => worker!.stop())
  }
  if (role === 'api' || role === 'all') {
    if (config.tenantsByKey.size === 0) logger.warn('AIRLOCK_API_KEYS is empty: every /v1 request will get 401')
    const app = await buildApp({ config, logger, metrics })
    await app.listen({ port: config.port, host: config.host })
    stops.push(() => app.close())
  }
  {
    // Every process serves /metrics on a listener of its own, off the public port (a
    // worker-only process also /healthz and /readyz: ready while it can isolate jobs,
    // so an orchestrator sees a fail-closed worker).
    // A client that trickles its headers or its request is timed out as on the API's port.
    const timeouts = {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(config.headersTimeoutMs, config.requestTimeoutMs),
      connectionsCheckingInterval: 1000,
    }
    const server = createServer(timeouts, (req, res) => {
      if (req.url === '/metrics') {
        void metrics.registry.metrics().then(
          (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
          (err: unknown) => {
            logger.error({ err }, 'metrics could not be collected')
            json(res, 500, 'AIRLOCK_ERR_INTERNAL', 'internal error')
          },
        )
      } else if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
      } else if (req.url === '/readyz' && worker) {
        const isolation = worker?.isolation
        res
          .writeHead(isolation?.ok ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ ok: !!isolation?.ok, reason: isolation?.reason ?? null }))
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
      log: logger,
      metrics,
    })
    server.keepAliveTimeout = config.keepAliveTimeoutMs
    server.listen(config.metricsPort, config.metricsHost)
    stops.push(() => new Promise((resolve) => server.close(() => resolve())))
  }

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down')
    // The API stops accepting and answers what is in flight while the worker finishes
    // or hands back its running jobs; neither waits for the other.
    void Promise.all(
      stops.map((stop) => stop().catch((err: unknown) => logger.error({ err }, 'shutdown step failed'))),
    ).then(() => {
      logger.info('stopped')
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})

/** An answer of the metrics port in the API's error shape. */
function json(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ statusCode: status, code, message }))
}
