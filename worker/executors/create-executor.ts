import type { Logger } from 'pino'
import type { Config } from '../../core/config.js'
import type { Executor } from './executor.js'
import { LocalExecutor } from './local/local-executor.js'

/** The executor named by AIRLOCK_EXECUTOR, built from config. */
export function createExecutor(config: Config, logger: Logger): Executor {
  return new LocalExecutor({
    runscPath: config.runscPath,
    platform: config.runscPlatform,
    network: config.sandboxNetwork,
    imagesDir: config.imagesDir,
    stateDir: config.stateDir,
    cgroupParent: config.cgroupParent,
    sandboxOverheadMb: config.sandboxOverheadMb,
    workspaceMb: config.workspaceMb,
    logger: logger.child({ component: 'executor' }),
  })
}
