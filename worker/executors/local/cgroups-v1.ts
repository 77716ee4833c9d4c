import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CGROUP_ROOT,
  CONTROLLERS,
  CPU_PERIOD_US,
  CPU_SHARES,
  cpuQuotaUs,
  exists,
  flatKeyed,
  killListed,
  removeDirTree,
  subdirectories,
  writeControl,
  type CgroupHost,
  type HostLimits,
  type SandboxCgroup,
} from './cgroups.js'

/**
 * The files that set a sandbox's limits on cgroup v1, in the order they are written,
 * by controller. Pure. `optional` files may be missing: memsw exists only with swap
 * accounting on; where it does, swap is forbidden too, or the limit would only slow
 * a memory bomb down.
 */
export function v1LimitWrites(
  limits: HostLimits,
): { controller: (typeof CONTROLLERS)[number]; file: string; value: string; optional?: true }[] {
  return [
    { controller: 'memory', file: 'memory.limit_in_bytes', value: String(limits.memoryBytes) },
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(limits.memoryBytes), optional: true },
    { controller: 'pids', file: 'pids.max', value: String(limits.pids) },
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: String(CPU_PERIOD_US) },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(cpuQuotaUs(limits.cpus)) },
    {
      controller: 'cpu',
      file: 'cpu.shares',
      value: String(limits.background ? CPU_SHARES.background : CPU_SHARES.normal),
    },
  ]
}

/**
 * OOM kills from memory.oom_control; kernels before 4.13 have no oom_kill counter,
 * and there a failed charge (memory.failcnt) is the next best sign. Pure.
 */
export function v1OomKills(oomControl: string, failcnt: string): number {
  const kills = flatKeyed(oomControl, 'oom_kill')
  if (kills !== undefined) return kills
  return Number(failcnt.trim()) > 0 ? 1 : 0
}

export class CgroupV1Host implements CgroupHost {
  readonly version = 'v1'
  /** The hierarchies mounted under the root, the limiting controllers first; read once, not per sandbox. */
  private hierarchies: Promise<string[]> | undefined
  constructor(readonly root = CGROUP_ROOT) {}

  async problem(): Promise<string | undefined> {
    for (const c of CONTROLLERS) {
      if (!(await exists(join(this.root, c, 'tasks')))) {
        return `cgroup v1 controller "${c}" is not mounted at ${join(this.root, c)} (the local executor needs the memory, pids and cpu controllers)`
      }
    }
    return undefined
  }

  children(path: string): Promise<string[]> {
    return subdirectories(join(this.root, 'memory', path))
  }

  sandbox(path: string): SandboxCgroup {
    this.hierarchies ??= subdirectories(this.root).then((names) => [
      ...CONTROLLERS,
      ...names.filter((n) => !(CONTROLLERS as readonly string[]).includes(n)),
    ])
    return new CgroupV1(path, this.root, this.hierarchies)
  }
}

/**
 * A sandbox's cgroup on v1: one directory per controller. runsc also makes the
 * same path in every other hierarchy mounted here (cpuset, devices, freezer, the
 * systemd and unified ones), so removal covers them all.
 */
export class CgroupV1 implements SandboxCgroup {
  constructor(
    readonly path: string,
    private readonly root: string,
    /** Every hierarchy to remove the path from (CgroupV1Host's list). */
    private readonly hierarchies: Promise<string[]>,
  ) {}

  private file(controller: string, name: string): string {
    return join(this.root, controller, this.path, name)
  }

  async create(limits: HostLimits): Promise<void> {
    for (const c of CONTROLLERS) await mkdir(join(this.root, c, this.path), { recursive: true })
    await this.limit(limits)
  }

  async limit(limits: HostLimits): Promise<void> {
    for (const w of v1LimitWrites(limits)) await writeControl(this.file(w.controller, w.file), w.value, w.optional)
  }

  async memoryBytes(): Promise<number> {
    return Number((await readFile(this.file('memory', 'memory.usage_in_bytes'), 'utf8').catch(() => '0')).trim()) || 0
  }

  async oomKills(): Promise<number> {
    const [oomControl, failcnt] = await Promise.all([
      readFile(this.file('memory', 'memory.oom_control'), 'utf8').catch(() => ''),
      readFile(this.file('memory', 'memory.failcnt'), 'utf8').catch(() => '0'),
    ])
    return v1OomKills(oomControl, failcnt)
  }

  async threadRefusals(): Promise<number> {
    return flatKeyed(await readFile(this.file('pids', 'pids.events'), 'utf8').catch(() => ''), 'max') ?? 0
  }

  async remove(): Promise<void> {
    // The limiting controllers first: their processes are the sandbox's.
    for (const name of await this.hierarchies)
      await removeDirTree(join(this.root, name, this.path), (dir) => killListed(join(dir, 'cgroup.procs')))
  }
}
