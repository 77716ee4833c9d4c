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
  /**
   * Keep only this many bytes (plus one, so the reader sees the cut) of stdout and of
   * stderr inside the sandbox and drain the rest there, where the runtime writes all
   * output to the node's disk, as the kubelet's container log does: a flood would fill
   * it and get the pod evicted. The program still runs to its end or its time limit,
   * as under the local executor, which caps while it reads its pipes.
   */
  capOutputBytes?: number
}

/**
 * Helper processes the capped launcher keeps beside the program (the shell, the stderr
 * reader's subshell and its head/cat, the stdout reader's head/cat), all running as the
 * sandbox user and so counted by RLIMIT_NPROC.
 */
export const CAP_HELPER_PROCESSES = 4

/**
 * The sandbox's argv. The job's files are read-only where they are mounted; copying
 * them into the writable workspace gives programs the working directory they expect.
 */
export function sandboxArgv(spec: JobSpec, runtime: RuntimeDefinition, options: ArgvOptions = {}): string[] {
  const from = options.filesSubdir ? `${JOB_FILES_MOUNT}/${options.filesSubdir}` : JOB_FILES_MOUNT
  const copy = `cp -R ${from}/. ${WORKSPACE}/`
  // Names are validated identifiers; values stay in the environment, never in the script.
  const clearEnv = options.onlyEnv ? `env -i ${options.onlyEnv.map((name) => `"${name}=$${name}"`).join(' ')} ` : ''
  const exec = `exec ${clearEnv}"$@"${options.stdinFile ? ` < ${JOB_FILES_MOUNT}/${options.stdinFile}` : ''}`
  const argv = (script: string) => ['/bin/sh', '-c', script, 'airlock', ...runtime.command(spec.entrypoint, spec.args)]
  // dash's name for RLIMIT_NPROC is -p.
  const ulimit = (extra: number) => (options.pidsLimit === undefined ? '' : `ulimit -p ${options.pidsLimit + extra} && `)
  if (options.capOutputBytes === undefined) return argv(`${ulimit(0)}${copy} && ${exec}`)

  // The program writes into two FIFOs; a head/cat pair per stream passes the first
  // bytes on as they come (unbuffered: head's stdio would hold them until it ends)
  // and drains the rest. The shell waits for the stdout reader, the stderr
  // reader, then the program, and exits with the program's status, so the container's
  // exit code is the program's. dash has no pipefail, hence the FIFOs.
  const keep = `{ stdbuf -o0 head -c ${options.capOutputBytes + 1}; cat >/dev/null; }`
  return argv(
    [
      `${copy} && f=$(mktemp -d) && mkfifo "$f/o" "$f/e" || exit 125`,
      `${keep} <"$f/e" >&2 &`,
      'e=$!',
      `(${ulimit(CAP_HELPER_PROCESSES)}${exec}) >"$f/o" 2>"$f/e" &`,
      'p=$!',
      `${keep} <"$f/o"`,
      'wait $e',
      'wait $p',
    ].join('\n'),
  )
}
