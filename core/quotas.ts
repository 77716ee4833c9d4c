import type { ErrorDetail } from './errors.js'
import type { LimitsPolicy } from './job-spec.js'
import { defaultKey, LIMIT_BOUNDS, maxKey, type Limits } from './limits.js'
import type { Quotas } from './tenant-store.js'
import type { Config } from './config.js'
import type { TenantDefaults } from './job-store.js'

/** The quotas every tenant without its own has (fair share and storage by default). */
export function tenantDefaults(
  config: Pick<Config, 'defaultMaxRunning' | 'defaultMaxQueued' | 'defaultMaxStoredBytes'>,
): TenantDefaults {
  return {
    maxRunning: config.defaultMaxRunning,
    maxQueued: config.defaultMaxQueued,
    maxStoredBytes: config.defaultMaxStoredBytes,
  }
}

/** A job's limits against its tenant's per-job quotas: what is over, empty when none. Pure. */
export function jobLimitsOverQuota(limits: Limits, quotas: Quotas): ErrorDetail[] {
  return LIMIT_BOUNDS.flatMap(([field, bound]) => {
    const max = quotas[maxKey(bound)]
    const value = limits[field]
    return max !== undefined && value !== undefined && value > max
      ? [{ path: `/limits/${field}`, message: `${value} is above this tenant's quota of ${max}` }]
      : []
  })
}

/**
 * The server's limit policy with defaults lowered to the tenant's per-job quotas, so a
 * job that asks for nothing fits its tenant's quota. Pure.
 */
export function tenantLimitsPolicy(policy: LimitsPolicy, quotas: Quotas): LimitsPolicy {
  const lowered = { ...policy }
  // Every default under the quota that bounds it: the compile step's default too, which
  // timeoutMs's quota bounds, so a compiled job that asks for nothing is not refused for it.
  for (const [field, bound] of LIMIT_BOUNDS) {
    const quota = quotas[maxKey(bound)]
    if (quota !== undefined) lowered[defaultKey(field)] = Math.min(policy[defaultKey(field)], quota)
  }
  return lowered
}
