import type { ErrorDetail } from './errors.js'
import type { Limits, LimitsPolicy } from './job-spec.js'
import type { Quotas } from './tenant-store.js'
import type { Config } from './config.js'
import type { TenantDefaults } from './job-store.js'

/** The quotas every tenant without its own has (fair share and storage by default). */
export function tenantDefaults(config: Pick<Config, 'defaultMaxRunning' | 'defaultMaxQueued' | 'defaultMaxStoredBytes'>): TenantDefaults {
  return { maxRunning: config.defaultMaxRunning, maxQueued: config.defaultMaxQueued, maxStoredBytes: config.defaultMaxStoredBytes }
}

const PER_JOB: [keyof Limits, keyof Quotas][] = [
  ['timeoutMs', 'maxTimeoutMs'],
  ['memoryMb', 'maxMemoryMb'],
  ['cpus', 'maxCpus'],
  ['pids', 'maxPids'],
  ['outputBytes', 'maxOutputBytes'],
  ['compileTimeoutMs', 'maxTimeoutMs'],
]

/** A job's limits against its tenant's per-job quotas: what is over, empty when none. Pure. */
export function jobLimitsOverQuota(limits: Limits, quotas: Quotas): ErrorDetail[] {
  return PER_JOB.flatMap(([limit, quota]) => {
    const max = quotas[quota]
    const value = limits[limit]
    return max !== undefined && value !== undefined && value > max ? [{ path: `/limits/${limit}`, message: `${value} is above this tenant's quota of ${max}` }] : []
  })
}

/**
 * The server's limit policy with defaults lowered to the tenant's per-job quotas, so a
 * job that asks for nothing fits its tenant's quota. Pure.
 */
export function tenantLimitsPolicy(policy: LimitsPolicy, quotas: Quotas): LimitsPolicy {
  const lower = (def: number, max: number | undefined) => (max === undefined ? def : Math.min(def, max))
  return {
    ...policy,
    defaultTimeoutMs: lower(policy.defaultTimeoutMs, quotas.maxTimeoutMs),
    defaultMemoryMb: lower(policy.defaultMemoryMb, quotas.maxMemoryMb),
    defaultCpus: lower(policy.defaultCpus, quotas.maxCpus),
    defaultPids: lower(policy.defaultPids, quotas.maxPids),
    defaultOutputBytes: lower(policy.defaultOutputBytes, quotas.maxOutputBytes),
  }
}
