import type { JobSpec } from '../../core/job-spec.js'
import type { RuntimeDefinition } from '../../core/runtimes.js'

/**
 * What runs inside a sandbox, the same under both executors: who it runs as, where
 * the job's files are, its environment and its argv. Pure.
 */

/** The fixed non-root identity every job runs as, locally and on Kubernetes. */
export const SANDBOX_UID = 10001
export const SANDBOX_GID = 10001

export const WORKSPACE = '/workspace'
/** Where the job's files are mounted read-only before being copied to the workspace. */
export const JOB_FILES_MOUNT = '/airlock/job'

/** The job's environment: its own variables, and the ones the sandbox fixes. */
export function sandboxEnv(spec: JobSpec): Record<string, string> {
  return {
    ...spec.env,
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: WORKSPACE,
    LANG: spec.env.LANG ?? 'C.UTF-8',
    PYTHONUNBUFFERED: spec.env.PYTHONUNBUFFERED ?? '1',
  }
}

export interface ArgvOptions {
  /** Where the files sit under JOB_FILES_MOUNT ('' for the mount itself). */
  filesSubdir?: string
  /** A file under JOB_FILES_MOUNT to read stdin from; absent when stdin is a pipe. */
  stdinFile?: string
  /**
   * Set RLIMIT_NPROC in the sandbox (gVisor counts every task under it) where the
   * runtime cannot set rlimits itself, as Kubernetes cannot.
   */
  pidsLimit?: number
  /**
   * The only variables the program may see (the job's, from sandboxEnv), where the
   * runtime adds its own to the container's environment, as the kubelet does.
   */
  onlyEnv?: readonly string[]
}

/**
 * The sandbox's argv. The job's files are read-only where they are mounted; copying
 * them into the writable workspace gives programs the working directory they expect.
 */
export function sandboxArgv(spec: JobSpec, runtime: RuntimeDefinition, options: ArgvOptions = {}): string[] {
  const from = options.filesSubdir ? `${JOB_FILES_MOUNT}/${options.filesSubdir}` : JOB_FILES_MOUNT
  const steps = [`cp -R ${from}/. ${WORKSPACE}/`]
  // dash's name for RLIMIT_NPROC is -p.
  if (options.pidsLimit !== undefined) steps.unshift(`ulimit -p ${options.pidsLimit}`)
  // Names are validated identifiers; values stay in the environment, never in the script.
  const clearEnv = options.onlyEnv ? `env -i ${options.onlyEnv.map((name) => `"${name}=$${name}"`).join(' ')} ` : ''
  const exec = `exec ${clearEnv}"$@"${options.stdinFile ? ` < ${JOB_FILES_MOUNT}/${options.stdinFile}` : ''}`
  return ['/bin/sh', '-c', `${steps.join(' && ')} && ${exec}`, 'airlock', ...runtime.command(spec.entrypoint, spec.args)]
}
