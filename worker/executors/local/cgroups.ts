import { access, readdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * A sandbox's cgroup, on whichever hierarchy the host has (cgroups-v1.ts,
 * cgroups-v2.ts). Created by us before runsc starts: runsc joins a cgroup that
 * already exists and leaves it in place when the sandbox ends, so its OOM and
 * pids counters can still be read afterwards, then we remove it.
 */
export interface SandboxCgroup {
  /** From the hierarchy's root, e.g. /airlock/airlock-job_1: the OCI bundle's cgroupsPath. */
  readonly path: string
  create(limits: HostLimits): Promise<void>
  /**
   * Sets the limits of a cgroup that exists: a warm sandbox's, at the claim of its job.
   * They may only go down from what it was created with (a warm sandbox boots under
   * the largest a job may have), which v1's memory and memsw limits need in this order.
   */
  limit(limits: HostLimits): Promise<void>
  /** Memory charged to it now (host pages of the Sentry, Gofer and the program). */
  memoryBytes(): Promise<number>
  /** Times the kernel's OOM killer killed a process of the sandbox. */
  oomKills(): Promise<number>
  /**
   * Forks and clones of the sandbox's host processes that the pids limit refused: each
   * is gVisor failing to get a thread. 0 where the kernel does not count them.
   */
  threadRefusals(): Promise<number>
  /** Removes it (and anything below it), killing what is left in it first. */
  remove(): Promise<void>
}

export interface HostLimits {
  memoryBytes: number
  pids: number
  cpus: number
  /**
   * A warm sandbox booting or waiting for its job: the least CPU weight, so it runs on
   * what jobs leave and its boot never slows a job down. Its claim sets the usual one.
   */
  background?: boolean
}

/** cgroup v1 cpu.shares: the kernel's default, and its least. */
export const CPU_SHARES = { normal: 1024, background: 2 } as const
/** cgroup v2 cpu.weight: the default, and the least. */
export const CPU_WEIGHT = { normal: 100, background: 1 } as const

export type CgroupVersion = 'v1' | 'v2'

/** What the local executor needs of the host's cgroups. */
export interface CgroupHost {
  readonly version: CgroupVersion
  /** Why sandboxes cannot be limited here; undefined when they can. */
  problem(): Promise<string | undefined>
  sandbox(path: string): SandboxCgroup
  /** Names of the cgroups directly below `path` ('' for the root). */
  children(path: string): Promise<string[]>
}

/** The controllers every sandbox is limited by, under both hierarchies. */
export const CONTROLLERS = ['memory', 'pids', 'cpu'] as const

export const CGROUP_ROOT = '/sys/fs/cgroup'

/** The CPU period both hierarchies use: quota per 100 ms. */
export const CPU_PERIOD_US = 100_000

/** A CPU quota for `cpus` CPUs per CPU_PERIOD_US; at least 1 ms, the kernel's floor. */
export function cpuQuotaUs(cpus: number): number {
  return Math.max(1000, Math.round(cpus * CPU_PERIOD_US))
}

/**
 * Which hierarchy a cgroup root holds. The unified (v2) hierarchy has
 * cgroup.controllers at its root; a v1 root is a directory of per-controller
 * mounts. A hybrid host (v1 controllers, plus an empty v2 mount at unified/ for
 * systemd) is v1: that is where the controllers are.
 */
export async function cgroupVersion(root = CGROUP_ROOT): Promise<CgroupVersion | undefined> {
  if (await exists(join(root, 'cgroup.controllers'))) return 'v2'
  if (await exists(join(root, 'memory', 'tasks'))) return 'v1'
  return undefined
}

/** Reads a `name value` line of a flat-keyed cgroup file (memory.events, pids.events, memory.oom_control). Pure. */
export function flatKeyed(text: string, key: string): number | undefined {
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/)
    if (k === key && v !== undefined && /^\d+$/.test(v)) return Number(v)
  }
  return undefined
}

/**
 * Removes a cgroup directory and every one below it, deepest first. A directory
 * still busy (EBUSY while a sandbox's last processes are reaped) gets `kill` and
 * another try, for about a second.
 */
export async function removeDirTree(dir: string, kill: (dir: string) => Promise<void>): Promise<void> {
  const children = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const child of children) if (child.isDirectory()) await removeDirTree(join(dir, child.name), kill)
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (attempt >= 50) throw err
      await kill(dir)
      await sleep(20)
    }
  }
}

export async function subdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  return entries.filter((d) => d.isDirectory()).map((d) => d.name)
}

/** SIGKILLs every process listed in a cgroup.procs file. */
export async function killListed(procsFile: string): Promise<void> {
  const text = await readFile(procsFile, 'utf8').catch(() => '')
  for (const pid of text.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

/** Writes a cgroup file; `optional` ones may be absent (e.g. swap accounting off). */
export async function writeControl(file: string, value: string, optional = false): Promise<void> {
  try {
    await writeFile(file, value)
  } catch (err) {
    if (!optional) throw err
  }
}
