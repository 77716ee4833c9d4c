import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { loadConfig } from '../../core/config.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { createLogger } from '../../core/logger.js'
import type { JobRequest } from '../../sdk/src/index.js'
import { createExecutor } from '../../worker/executors/create-executor.js'
import { removeCgroup } from '../../worker/executors/local/cgroup-host.js'
import { rawRunscRun } from './raw-runsc.js'
import type { DirectRunner, Isolation } from './run-bench.js'

/**
 * Runs jobs directly with the executor the service uses (AIRLOCK_EXECUTOR: local,
 * runsc or runc on this machine; kubernetes, a Job in the cluster of
 * AIRLOCK_K8S_*), with no API, no queue and no Redis: the raw sandbox time the
 * service's own overhead is measured against. The local executor needs what a local
 * worker needs (root, runsc, runc, the images); null if anything is missing.
 */
export async function directRunner(): Promise<
  { runner: DirectRunner; close(): Promise<void> } | { unavailable: string }
> {
  const kubernetes = process.env.AIRLOCK_EXECUTOR === 'kubernetes'
  if (!kubernetes && process.getuid?.() !== 0) return { unavailable: 'not root' }
  const config = loadConfig({
    ...process.env,
    AIRLOCK_EXECUTOR: kubernetes ? 'kubernetes' : 'local',
    AIRLOCK_SANDBOX_NETWORK: 'none',
    AIRLOCK_STATE_DIR: `/run/airlock-bench-${process.pid}`,
    AIRLOCK_CGROUP_PARENT: `airlock-bench-${process.pid}`,
  })
  // Cold, as the raw sandbox the service's warm and cold starts are set against.
  const executor = createExecutor(config, createLogger('silent'), { warm: false })
  const report = await executor.checkIsolation()
  if (!report.ok) return { unavailable: report.reason ?? 'isolation check failed' }
  let n = 0
  // The platform the executor found working here (auto: the first that runs).
  const platform = /platform (\w+)/.exec(report.detail)?.[1] ?? config.runscPlatform
  const resolve = (request: JobRequest, isolation: Isolation) =>
    // The SDK's request type and the server's are one schema; only optionality of env values differs.
    resolveJobSpec({ ...request, isolation } as Parameters<typeof resolveJobSpec>[0], config)
  return {
    runner: {
      async run(request: JobRequest, isolation: Isolation) {
        const spec = resolve(request, isolation)
        const t0 = performance.now()
        const jobId = `bench_${process.pid}_${n++}`
        const outcome = await executor.run({ jobId, tenant: 'bench', spec, signal: new AbortController().signal })
        const ms = performance.now() - t0
        // As a worker does once the result is stored (a Kubernetes Job is deleted).
        await executor.forget?.(jobId)
        return outcome.status === 'succeeded' ? ms : null
      },
      raw: kubernetes
        ? undefined
        : (request: JobRequest) =>
            rawRunscRun(resolve(request, 'gvisor'), {
              runscPath: config.runscPath,
              platform,
              imagesDir: config.imagesDir,
              dir: join(config.stateDir, 'raw'),
            }),
    },
    async close() {
      await executor.close()
      if (kubernetes) return
      await removeCgroup(config.cgroupParent).catch(() => undefined)
      await rm(config.stateDir, { recursive: true, force: true })
    },
  }
}
