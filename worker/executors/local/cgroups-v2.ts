import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CGROUP_ROOT,
  CONTROLLERS,
  CPU_PERIOD_US,
  CPU_WEIGHT,
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

/*
 * cgroup v2 (the unified hierarchy) for the local executor. There is no v2 host on
 * the development machine: what is specific to v2 is kept in the pure functions
 * below, tested against the files and formats of a real v2 hierarchy
 * (Documentation/admin-guide/cgroup-v2.rst), and the class is tested on a directory
 * tree laid out as one (test/unit/cgroups-v2.test.ts says so).
 */

/** The files that set a sandbox's limits on v2, in order. Pure. memory.swap.max exists only with swap accounting. */
export function v2LimitWrites(limits: HostLimits): { file: string; value: string; optional?: true }[] {
  return [
    { file: 'memory.max', value: String(limits.memoryBytes) },
    { file: 'memory.swap.max', value: '0', optional: true },
    // Without this the kernel may OOM-kill one of the sandbox's processes and leave
    // the rest (the Sentry without its Gofer, say) running.
    { file: 'memory.oom.group', value: '1', optional: true },
    { file: 'pids.max', value: String(limits.pids) },
    { file: 'cpu.max', value: `${cpuQuotaUs(limits.cpus)} ${CPU_PERIOD_US}` },
    { file: 'cpu.weight', value: String(limits.background ? CPU_WEIGHT.background : CPU_WEIGHT.normal) },
  ]
}

/**
 * The cgroups whose cgroup.subtree_control must enable our controllers for a
 * sandbox at `path` to have them: the root and every ancestor of the sandbox's
 * cgroup, top down (v2 hands a controller to a child only when its parent enables
 * it). Paths from the hierarchy's root; '' is the root. Pure.
 */
export function v2ControllerParents(path: string): string[] {
  const parts = path.split('/').filter(Boolean)
  return Array.from({ length: parts.length }, (_, i) => parts.slice(0, i).join('/'))
}

/** The controllers of ours a cgroup.controllers file lacks. Pure. */
export function v2MissingControllers(controllers: string): string[] {
  const have = new Set(controllers.trim().split(/\s+/))
  return CONTROLLERS.filter((c) => !have.has(c))
}

/** The line that enables our controllers in a cgroup.subtree_control. */
export const V2_ENABLE = CONTROLLERS.map((c) => `+${c}`).join(' ')

/** OOM kills from memory.events: oom_kill counts the kernel's kills, oom_group_kill whole-group ones. Pure. */
export function v2OomKills(memoryEvents: string): number {
  return flatKeyed(memoryEvents, 'oom_kill') ?? flatKeyed(memoryEvents, 'oom_group_kill') ?? 0
}

export class CgroupV2Host implements CgroupHost {
  readonly version = 'v2'
  constructor(readonly root = CGROUP_ROOT) {}

  async problem(): Promise<string | undefined> {
    const controllers = await readFile(join(this.root, 'cgroup.controllers'), 'utf8').catch(() => undefined)
    if (controllers === undefined) return `no cgroup v2 hierarchy at ${this.root}`
    const missing = v2MissingControllers(controllers)
    if (missing.length > 0)
      return `the cgroup v2 hierarchy at ${this.root} does not offer the ${missing.join(', ')} controller${missing.length > 1 ? 's' : ''} (the local executor needs memory, pids and cpu)`
    return undefined
  }

  children(path: string): Promise<string[]> {
    return subdirectories(join(this.root, path))
  }

  sandbox(path: string): SandboxCgroup {
    return new CgroupV2(path, this.root)
  }
}

/** A sandbox's cgroup on v2: one directory, every controller's files in it. */
export class CgroupV2 implements SandboxCgroup {
  constructor(
    readonly path: string,
    private readonly root = CGROUP_ROOT,
  ) {}

  private file(name: string): string {
    return join(this.root, this.path, name)
  }

  async create(limits: HostLimits): Promise<void> {
    // Parents hold no processes of ours (v2's "no internal processes" rule forbids
    // enabling controllers in a cgroup with members, the root excepted).
    for (const parent of v2ControllerParents(this.path)) {
      const dir = join(this.root, parent)
      await mkdir(dir, { recursive: true })
      const enabled = await readFile(join(dir, 'cgroup.subtree_control'), 'utf8').catch(() => '')
      if (v2MissingControllers(enabled).length > 0) await writeControl(join(dir, 'cgroup.subtree_control'), V2_ENABLE)
    }
    await mkdir(join(this.root, this.path), { recursive: true })
    await this.limit(limits)
  }

  async limit(limits: HostLimits): Promise<void> {
    for (const w of v2LimitWrites(limits)) await writeControl(this.file(w.file), w.value, w.optional)
  }

  async memoryBytes(): Promise<number> {
    return Number((await readFile(this.file('memory.current'), 'utf8').catch(() => '0')).trim()) || 0
  }

  async oomKills(): Promise<number> {
    return v2OomKills(await readFile(this.file('memory.events'), 'utf8').catch(() => ''))
  }

  async threadRefusals(): Promise<number> {
    return flatKeyed(await readFile(this.file('pids.events'), 'utf8').catch(() => ''), 'max') ?? 0
  }

  async remove(): Promise<void> {
    await removeDirTree(join(this.root, this.path), async (dir) => {
      // cgroup.kill (Linux 5.14) kills every process below, atomically; older kernels get them one by one.
      if (await exists(join(dir, 'cgroup.kill'))) await writeControl(join(dir, 'cgroup.kill'), '1', true)
      else await killListed(join(dir, 'cgroup.procs'))
    })
  }
}
