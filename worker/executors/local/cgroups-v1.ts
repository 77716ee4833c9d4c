import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const ROOT = '/sys/fs/cgroup'
const CONTROLLERS = ['memory', 'pids', 'cpu'] as const

export interface HostLimits {
  memoryBytes: number
  pids: number
  cpus: number
}

/**
 * The sandbox's cgroups, created by us before runsc starts. runsc joins a cgroup that
 * already exists and leaves it in place when the sandbox ends, so we can still read
 * the OOM-kill count afterwards, then remove it ourselves.
 */
export class CgroupV1 {
  constructor(readonly path: string) {}

  static async available(): Promise<string | undefined> {
    for (const c of CONTROLLERS) {
      try {
        await access(join(ROOT, c, 'tasks'))
      } catch {
        return `cgroup v1 controller "${c}" is not mounted at ${join(ROOT, c)} (the local executor needs cgroup v1 memory, pids and cpu controllers)`
      }
    }
    return undefined
  }

  private file(controller: (typeof CONTROLLERS)[number], name: string): string {
    return join(ROOT, controller, this.path, name)
  }

  async create(limits: HostLimits): Promise<void> {
    for (const c of CONTROLLERS) await mkdir(join(ROOT, c, this.path), { recursive: true })
    await writeFile(this.file('memory', 'memory.limit_in_bytes'), String(limits.memoryBytes))
    // Where swap accounting exists, forbid swap too, or the limit would only slow a memory bomb down.
    await writeFile(this.file('memory', 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes)).catch(() => undefined)
    await writeFile(this.file('pids', 'pids.max'), String(limits.pids))
    await writeFile(this.file('cpu', 'cpu.cfs_period_us'), '100000')
    await writeFile(this.file('cpu', 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpus * 100_000))))
  }

  async oomKills(): Promise<number> {
    try {
      const text = await readFile(this.file('memory', 'memory.oom_control'), 'utf8')
      const m = /^oom_kill (\d+)$/m.exec(text)
      if (m) return Number(m[1])
      // Kernels before 4.13 have no oom_kill counter; a failed charge is the next best sign.
      const failcnt = await readFile(this.file('memory', 'memory.failcnt'), 'utf8')
      return Number(failcnt.trim()) > 0 ? 1 : 0
    } catch {
      return 0
    }
  }

  /**
   * Forks and clones of the sandbox's host processes that the pids limit refused
   * (pids.events "max"): each is gVisor failing to get a thread. 0 where the kernel
   * does not count them.
   */
  async threadRefusals(): Promise<number> {
    const text = await readFile(this.file('pids', 'pids.events'), 'utf8').catch(() => '')
    const m = /^max (\d+)$/m.exec(text)
    return m ? Number(m[1]) : 0
  }

  async remove(): Promise<void> {
    for (const c of CONTROLLERS) {
      const dir = join(ROOT, c, this.path)
      for (let attempt = 0; ; attempt++) {
        try {
          await rmdir(dir)
          break
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code === 'ENOENT') break
          if (attempt >= 50) throw err
          // EBUSY while the sandbox's last processes are being reaped.
          await killAll(join(dir, 'cgroup.procs'))
          await sleep(20)
        }
      }
    }
  }
}

async function killAll(procsFile: string): Promise<void> {
  const text = await readFile(procsFile, 'utf8').catch(() => '')
  for (const pid of text.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
}
