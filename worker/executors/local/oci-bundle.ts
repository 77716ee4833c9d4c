import { ARTIFACTS_DIR } from '../../../core/artifacts.js'
import type { JobSpec } from '../../../core/job-spec.js'
import type { RuntimeDefinition } from '../../../core/runtimes.js'
import { JOB_FILES_MOUNT, SANDBOX_GID, SANDBOX_UID, sandboxArgv, sandboxEnv, WORKSPACE } from '../sandbox-process.js'
import { SANDBOX_SECCOMP } from '../sandbox-seccomp.js'

export { JOB_FILES_MOUNT, SANDBOX_GID, SANDBOX_UID, WORKSPACE }

export interface BundleInput {
  spec: JobSpec
  runtime: RuntimeDefinition
  /** Host path of the image's root filesystem (mounted read-only). */
  rootfsPath: string
  /** Host directory holding the job's files. */
  jobFilesPath: string
  /**
   * Absolute cgroup path (from each controller's root) the sandbox joins; a relative one would be taken relative to
   * runsc's own cgroup.
   */
  cgroupsPath: string
  workspaceMb: number
  /** none: a fresh network namespace with loopback only. host: stay in the host's (insecure; tests only). */
  network: 'none' | 'host'
  /**
   * The sandbox's seccomp profile (sandbox-seccomp.ts), enforced inside it by runsc
   * --oci-seccomp. Off only for `airlock bench`'s measure of what it costs.
   * @default true
   */
  seccomp?: boolean
  /** The process's argv instead of the job's own (sandboxArgv): a warm sandbox's launcher. */
  argv?: string[]
  /** Host directory (a bounded tmpfs) mounted writable at ARTIFACTS_DIR; absent: artifacts are off. */
  artifactsPath?: string
}

const NO_CAPS = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] }

/**
 * job spec -> OCI runtime config (config.json) for runsc. Pure, so the sandbox's
 * restrictions are asserted by unit tests as well as by probes inside real sandboxes.
 */
export function buildOciConfig(input: BundleInput): Record<string, unknown> {
  const { spec, runtime } = input
  const tmpfs = (destination: string, sizeMb: number) => ({
    destination,
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'nodev', `size=${sizeMb}m`, 'mode=1777'],
  })
  // The workspace is a tmpfs: the job's files are copied there, never to the host's disk.
  const env = sandboxEnv(spec)
  const cpuPeriod = 100_000
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: SANDBOX_UID, gid: SANDBOX_GID, additionalGids: [] },
      args: input.argv ?? sandboxArgv(spec, runtime),
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: WORKSPACE,
      capabilities: NO_CAPS,
      noNewPrivileges: true,
      rlimits: [
        // gVisor counts every task of the sandbox under this limit (they all share one
        // uid), which makes it the sandbox's process and thread limit.
        { type: 'RLIMIT_NPROC', hard: spec.limits.pids, soft: spec.limits.pids },
        { type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
    },
    root: { path: input.rootfsPath, readonly: true },
    hostname: 'sandbox',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      tmpfs('/tmp', input.workspaceMb),
      tmpfs(WORKSPACE, input.workspaceMb),
      {
        destination: JOB_FILES_MOUNT,
        type: 'bind',
        source: input.jobFilesPath,
        options: ['rbind', 'ro', 'nosuid', 'nodev'],
      },
      // Inside the workspace's tmpfs, so listed after it.
      ...(input.artifactsPath
        ? [
            {
              destination: ARTIFACTS_DIR,
              type: 'bind',
              source: input.artifactsPath,
              options: ['rbind', 'rw', 'nosuid', 'nodev'],
            },
          ]
        : []),
    ],
    linux: {
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: { limit: spec.limits.memoryMb * 1024 * 1024 },
        cpu: { quota: Math.max(1000, Math.round(spec.limits.cpus * cpuPeriod)), period: cpuPeriod },
        pids: { limit: spec.limits.pids },
      },
      // A fresh network namespace; runsc --network=none leaves only loopback in it.
      namespaces: [
        { type: 'pid' },
        ...(input.network === 'none' ? [{ type: 'network' }] : []),
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
      ],
      ...(input.seccomp === false ? {} : { seccomp: SANDBOX_SECCOMP }),
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  }
}
