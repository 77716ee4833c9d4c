import type { Logger } from 'pino'
import type { Config } from '../../core/config.js'
import type { Metrics } from '../../core/metrics.js'
import type { Executor } from './executor.js'
import { KubernetesExecutor } from './kubernetes/kubernetes-executor.js'
import { LocalExecutor } from './local/local-executor.js'

/** What only `airlock bench` changes: not settings, so no deployment can weaken a sandbox. */
export interface ExecutorOverrides {
  /** false: local sandboxes without the seccomp profile, to measure what it costs. */
  seccomp?: false
  /** false: no warm pool whatever AIRLOCK_WARM_POOL says, to measure cold starts. */
  warm?: false
  /** Where the executor's own metrics go (the warm pool's). */
  metrics?: Metrics
}

/** The executor named by AIRLOCK_EXECUTOR, built from config. */
export function createExecutor(config: Config, logger: Logger, overrides: ExecutorOverrides = {}): Executor {
  if (config.executor === 'kubernetes') {
    return new KubernetesExecutor({
      kubeconfig: config.k8sKubeconfig,
      namespace: config.k8sNamespace,
      runtimeClassName: config.k8sRuntimeClass,
      images: config.k8sImageRefs,
      workspaceMb: config.workspaceMb,
      unschedulableWaitMs: config.k8sUnschedulableWaitMs,
      startAllowanceMs: config.k8sStartAllowanceMs,
      ttlAfterFinishedSeconds: config.k8sTtlAfterFinishedSeconds,
      watchTimeoutSeconds: config.k8sWatchTimeoutSeconds,
      logStreams: config.k8sLogStreams,
      handOver: config.k8sHandOver,
      logger: logger.child({ component: 'executor' }),
      ...(overrides.warm === false
        ? {}
        : {
            warm: {
              sizes: config.k8sWarmPoolSizes,
              memoryBudgetMb: config.warmPoolMemoryMb,
              maxIdleMs: config.warmMaxIdleMs,
              limits: {
                timeoutMs: config.maxTimeoutMs,
                memoryMb: config.defaultMemoryMb,
                cpus: config.defaultCpus,
                pids: config.maxPids,
                outputBytes: config.defaultOutputBytes,
              },
            },
          }),
      ...(overrides.metrics ? { metrics: overrides.metrics } : {}),
    })
  }
  return new LocalExecutor({
    runscPath: config.runscPath,
    runcPath: config.runcPath,
    platform: config.runscPlatform,
    network: config.sandboxNetwork,
    imagesDir: config.imagesDir,
    stateDir: config.stateDir,
    cgroupParent: config.cgroupParent,
    sandboxOverheadMb: config.sandboxOverheadMb,
    workspaceMb: config.workspaceMb,
    artifactBytes: config.artifactBytes,
    logger: logger.child({ component: 'executor' }),
    ...(overrides.seccomp === false ? { seccomp: false } : {}),
    ...(overrides.warm === false
      ? {}
      : {
          warm: {
            sizes: config.warmPoolSizes,
            memoryBudgetMb: config.warmPoolMemoryMb,
            maxIdleMs: config.warmMaxIdleMs,
            limits: { memoryMb: config.defaultMemoryMb, cpus: config.defaultCpus, pids: config.maxPids },
          },
        }),
    ...(overrides.metrics ? { metrics: overrides.metrics } : {}),
  })
}
