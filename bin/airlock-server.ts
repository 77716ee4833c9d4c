import { parseArgs } from 'node:util'
import { buildApp } from '../api/app.js'
import { startMetricsListener } from '../api/metrics-listener.js'
import { ConfigError, loadConfig, type Config } from '../core/config.js'
import { createLogger } from '../core/logger.js'
import { Metrics } from '../core/metrics.js'
import { createExecutor } from '../worker/executors/create-executor.js'
import { WorkerService } from '../worker/worker-service.js'

/**
 * Entry point. `--role=all` (the default, `npm start`) runs API + worker + local
 * executor in one process; `--role=api` and `--role=worker` run one side each, for
 * scaling out.
 */
type Role = 'all' | 'api' | 'worker'

const USAGE = `usage: airlock-server [--role=all|api|worker]

  --role=all     API, worker and local executor in one process (the default)
  --role=api     the API alone
  --role=worker  a worker alone

Settings come from the environment (AIRLOCK_*, README "Configuration").`

/**
 * The process's role from its arguments. Anything else is refused before anything
 * starts: a mistyped flag (or `--help`) must not start a server with the default settings.
 */
function parseRole(argv: string[]): Role {
  let values: { role?: string; help?: boolean }
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: { role: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }))
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const role = values.role ?? 'all'
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
    const server = startMetricsListener({
      config,
      metrics,
      log: logger,
      isolation: worker && (() => worker!.isolation),
    })
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
