import { pino } from 'pino'
import { buildApp } from '../api/app.js'
import { ConfigError, loadConfig, type Config } from '../core/config.js'
import { createExecutor } from '../worker/executors/create-executor.js'
import { WorkerService } from '../worker/worker-service.js'

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
  const logger = pino({ level: config.logLevel, base: { role } })
  const stops: (() => Promise<void>)[] = []

  if (role === 'all' || role === 'worker') {
    const worker = new WorkerService(config, createExecutor(config, logger), logger.child({ component: 'worker' }))
    await worker.start()
    stops.push(() => worker.stop())
  }
  if (role === 'all' || role === 'api') {
    if (config.tenantsByKey.size === 0) logger.warn('AIRLOCK_API_KEYS is empty: every /v1 request will get 401')
    const app = await buildApp({ config, logger })
    await app.listen({ port: config.port, host: config.host })
    stops.unshift(() => app.close())
  }

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    void (async () => {
      for (const stop of stops) await stop().catch((err: unknown) => logger.error({ err }, 'shutdown step failed'))
      process.exit(0)
    })()
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
