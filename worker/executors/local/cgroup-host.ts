import { CGROUP_ROOT, cgroupVersion, type CgroupHost } from './cgroups.js'
import { CgroupV1Host } from './cgroups-v1.js'
import { CgroupV2Host } from './cgroups-v2.js'

/**
 * The host's cgroups, v1 or v2, chosen from what is mounted at `root` when asked.
 * Undefined where neither is: the local executor then takes no jobs.
 */
export async function hostCgroups(root = CGROUP_ROOT): Promise<CgroupHost | undefined> {
  const version = await cgroupVersion(root)
  if (version === 'v2') return new CgroupV2Host(root)
  if (version === 'v1') return new CgroupV1Host(root)
  return undefined
}

/** Removes the cgroup at `path` (from the hierarchy's root) and every one below it, killing what is left in them. */
export async function removeCgroup(path: string, root = CGROUP_ROOT): Promise<void> {
  const host = await hostCgroups(root)
  await host?.sandbox(path).remove()
}
