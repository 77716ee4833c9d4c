import { fileBytes, type JobSpec } from '../../core/job-spec.js'
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

/** Variables the sandbox sets whatever the job asks (core/job-spec.ts refuses them in a job's env). */
export const SANDBOX_FIXED_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: WORKSPACE,
}

/** The job's environment: its own variables, and the ones the sandbox fixes. */
export function sandboxEnv(spec: JobSpec): Record<string, string> {
  return {
    ...spec.env,
    ...SANDBOX_FIXED_ENV,
    LANG: spec.env.LANG ?? 'C.UTF-8',
    PYTHONUNBUFFERED: spec.env.PYTHONUNBUFFERED ?? '1',
  }
}

/** The program the sandbox runs: the worker's (the step driver) when it set one, else the runtime's command. */
export function programArgv(spec: JobSpec, runtime: RuntimeDefinition): string[] {
  return spec.program ?? runtime.command(spec.entrypoint, spec.args)
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
   * A directory under JOB_FILES_MOUNT with one file per variable of the program's
   * environment, each holding exactly `NAME=value` (envFiles): the program gets these
   * and no others, where the runtime adds its own to the container's environment, as
   * the kubelet does. They reach the program as data (argv of `env -i`), never as
   * shell text, and the launcher's own helpers never see them.
   */
  envDir?: string
  /**
   * Keep only this many bytes (plus one, so the reader sees the cut) of stdout and of
   * stderr inside the sandbox and drain the rest there, where the runtime writes all
   * output to the node's disk, as the kubelet's container log does: a flood would fill
   * it and get the pod evicted. The program still runs to its end or its time limit,
   * as under the local executor, which caps while it reads its pipes.
   */
  capOutputBytes?: number
  /**
   * Run nothing of the job's until the go line (WARM_GO) comes on stdin, which only
   * the worker's attach can send: the attach is then open before the program writes a
   * byte, so the worker reads all of its output, and the launcher's report, from the
   * container runtime rather than from the kubelet's log endpoint, which waits for the
   * kubelet's status of the container (up to a second). A second go (from a worker
   * that adopted the job) is never read. stdin is the runtime's pipe, so the program
   * needs stdinFile.
   */
  waitForGo?: boolean
  /**
   * Run the program only if the launcher itself is under a seccomp filter (mode 2),
   * where the runtime's enforcement of the profile cannot be seen from outside, as a
   * node's runsc configuration cannot be from the API server. Without one it exits
   * with NO_SECCOMP_EXIT before anything of the job's runs, saying so on stderr and in
   * the termination message (/dev/termination-log), which the executor reads.
   */
  requireSeccomp?: boolean
}

/** Shell text that sets `s` to the Seccomp mode of the shell's own process; only builtins. */
export const READ_SECCOMP_MODE = 's=; while read -r k v; do [ "$k" = Seccomp: ] && s=$v; done </proc/self/status'
/** That mode under a filter (0: none, 1: strict). */
export const SECCOMP_MODE_FILTER = '2'

/**
 * Shell text that exits NO_SECCOMP_EXIT, saying so, unless the shell runs under a seccomp filter
 * (ArgvOptions.requireSeccomp).
 */
function seccompCheckScript(): string {
  return `${READ_SECCOMP_MODE}; [ "$s" = ${SECCOMP_MODE_FILTER} ] || { m='${NO_SECCOMP_MESSAGE}'; echo "$m" >&2; [ -w /dev/termination-log ] && echo "$m" >/dev/termination-log; exit ${NO_SECCOMP_EXIT}; }`
}

/** The launcher's exit status when it refused to run a program with no seccomp filter. */
export const NO_SECCOMP_EXIT = 126
/** What it writes to stderr and to the container's termination message then. */
export const NO_SECCOMP_MESSAGE =
  'airlock: the sandbox is not under its seccomp profile (the node must run runsc with oci-seccomp); the program was not run'
/** The job's reason when its sandbox refused so: `error`, the node's fault, not the program's. */
export const NO_SECCOMP_REASON =
  "the node did not put the sandbox under Airlock's seccomp profile (its runsc needs oci-seccomp), so nothing of the job was run"

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
  const readEnv = options.envDir === undefined ? '' : `${readEnvScript(`${JOB_FILES_MOUNT}/${options.envDir}`)}\n`
  const exec = `exec ${options.envDir === undefined ? '' : 'env -i -- '}"$@"${options.stdinFile ? ` < ${JOB_FILES_MOUNT}/${options.stdinFile}` : ''}`
  const seccompCheck = options.requireSeccomp ? `${seccompCheckScript()}\n` : ''
  const go = options.waitForGo ? `${readGoLine()}\n` : ''
  const argv = (script: string) => [
    '/bin/sh',
    '-c',
    seccompCheck + go + script,
    'airlock',
    ...programArgv(spec, runtime),
  ]
  // dash's name for RLIMIT_NPROC is -p.
  const ulimit = (extra: number) =>
    options.pidsLimit === undefined ? '' : `ulimit -p ${options.pidsLimit + extra} && `
  if (options.capOutputBytes === undefined) return argv(`${readEnv}${ulimit(0)}${copy} && ${exec}`)

  return argv(readEnv + cappedRun(copy, String(options.capOutputBytes + 1), ulimit(CAP_HELPER_PROCESSES), exec))
}

/**
 * The capped launcher's own lines on the container's log, each with a nonce it draws
 * before the program starts (kubernetes/launcher-report.ts reads them): `begin NONCE`
 * first on stdout and on stderr; once the program has ended and both streams are
 * passed on, `end NONCE` on stderr and `exit NONCE STATUS NANOSECONDS` on stdout, each
 * after a newline of its own (the program's last line may have none). They let the
 * worker learn of the program's end as soon as the log shows it, before the kubelet's
 * status does.
 */
export const LAUNCHER_REPORT = {
  begin: 'airlock-launcher-begin',
  end: 'airlock-launcher-end',
  exit: 'airlock-launcher-exit',
} as const

/**
 * Shell text that copies the files (`copy`), then runs `exec` with stdout and stderr
 * each cut at `keepBytes` (shell text: a number, or an expansion) inside the sandbox.
 * The program writes into two FIFOs; a head/cat pair per stream passes the first
 * bytes on as they come (unbuffered: head's stdio would hold them until it ends)
 * and drains the rest. The shell waits for the stdout reader, the stderr
 * reader, then the program, reports (LAUNCHER_REPORT) and exits with the program's
 * status, so the container's exit code is the program's. dash has no pipefail, hence
 * the FIFOs. The nonce lives only in this shell (a child cannot read its parent's
 * memory under gVisor's ptrace scope) and in the log, which the program cannot read.
 */
function cappedRun(copy: string, keepBytes: string, ulimit: string, exec: string): string {
  const keep = `{ stdbuf -o0 head -c ${keepBytes}; cat >/dev/null; }`
  return [
    `${copy} && f=$(mktemp -d) && mkfifo "$f/o" "$f/e" && an_=$(od -An -N16 -tx1 /dev/urandom) && [ -n "$an_" ] || exit 125`,
    // od's words joined, with builtins only.
    'an=; for aw in $an_; do an=$an$aw; done; an_=',
    `echo ${LAUNCHER_REPORT.begin} "$an"; echo ${LAUNCHER_REPORT.begin} "$an" >&2`,
    `${keep} <"$f/e" >&2 &`,
    'e=$!',
    `(${ulimit}${exec}) >"$f/o" 2>"$f/e" &`,
    'p=$!',
    `${keep} <"$f/o"`,
    'wait $e',
    'wait $p',
    'ax=$?',
    'at=$(date +%s%N)',
    `printf '\\n%s %s\\n' ${LAUNCHER_REPORT.end} "$an" >&2`,
    `printf '\\n%s %s %s %s\\n' ${LAUNCHER_REPORT.exit} "$an" "$ax" "$at"`,
    'exit $ax',
  ].join('\n')
}

/**
 * The program's environment as files for ArgvOptions.envDir: one per variable, named
 * by its index (a name never becomes a path), holding exactly `NAME=value`. Pure.
 */
export function envFiles(env: Record<string, string>): { name: string; content: string }[] {
  return Object.entries(env).map(([name, value], i) => ({ name: String(i), content: `${name}=${value}` }))
}

/**
 * Shell text that appends each file of `dir` (envFiles) to "$@" as one word, then
 * moves the program's argv after them, ready for `env -i -- "$@"`.
 */
function readEnvScript(dir: string): string {
  return [appendFileWords(dir), 'while [ "$n" -gt 0 ]; do set -- "$@" "$1"; shift; n=$((n - 1)); done'].join('\n')
}

/**
 * Shell text that appends each file of `dir`, in name order, to "$@" as one word, and
 * sets `n` to the count of words "$@" held before. No eval and no text of the job's:
 * its names and values are only ever read into variables, byte for byte, and passed
 * on as words. Only builtins: a fork per variable is slow in gVisor. `read` drops the
 * newline that ends each line and leaves an unterminated last line in `l`, so joining
 * the lines back gives the file exactly, trailing newlines included.
 */
export function appendFileWords(dir: string): string {
  return [
    'n=$#',
    `for v in ${dir}/*; do`,
    '  [ -f "$v" ] || continue',
    '  a= l= nl=',
    `  while IFS= read -r l; do a=$a$nl$l; nl='\n'; done <"$v" || exit 125`,
    '  set -- "$@" "$a$nl$l"',
    'done',
  ].join('\n')
}

/**
 * A warm sandbox's job, as it is laid out under JOB_FILES_MOUNT at the claim: the
 * files, the job's environment variables (envFiles) and the program's argv (one file per word, named so
 * that name order is argv order), and its process limit. Nothing of it exists while
 * the sandbox waits.
 */
export const WARM_JOB = { files: 'files', env: 'env', argv: 'argv', pids: 'pids', cap: 'cap' } as const

/** What the worker writes to a warm sandbox's stdin once its job is in place; the job's stdin follows. */
export const WARM_GO = 'go\n'

/** Shell text that waits for the go line on stdin, and exits 125 having run nothing on anything else. */
function readGoLine(): string {
  return `read -r go && [ "$go" = ${WARM_GO.trim()} ] || exit 125`
}

/**
 * The job of a warm sandbox as files under JOB_FILES_MOUNT (WARM_JOB). Pure. `wholeEnv`:
 * the program's whole environment, for a launcher that starts it with `env -i` (where
 * the runtime adds variables of its own to the container's, as the kubelet does);
 * else only the job's own variables. `capOutputBytes`: also the output cap, for a
 * launcher that caps inside the sandbox.
 */
export function warmJobFiles(
  spec: JobSpec,
  runtime: RuntimeDefinition,
  options: { wholeEnv?: boolean; capOutputBytes?: boolean } = {},
): { path: string; content: string | Buffer }[] {
  const argv = programArgv(spec, runtime)
  return [
    ...spec.files.map((f) => ({ path: `${WARM_JOB.files}/${f.path}`, content: fileBytes(f) })),
    // Only the job's own by default: the fixed ones are the sandbox's from its boot.
    ...envFiles(options.wholeEnv ? sandboxEnv(spec) : spec.env).map((f) => ({
      path: `${WARM_JOB.env}/${f.name}`,
      content: f.content,
    })),
    ...argv.map((word, i) => ({ path: `${WARM_JOB.argv}/${String(i).padStart(6, '0')}`, content: word })),
    { path: WARM_JOB.pids, content: `${spec.limits.pids}\n` },
    ...(options.capOutputBytes ? [{ path: WARM_JOB.cap, content: `${spec.limits.outputBytes + 1}\n` }] : []),
  ]
}

/**
 * A warm pod's job as one byte stream for its stdin (the only way into a pod that
 * takes no traffic): the go line, then a frame per directory (`d 0 PATH`) and per file
 * (`f BYTES PATH`, then exactly BYTES bytes), an end frame, then the program's stdin.
 * Paths are warmJobFiles', whose job parts were checked at the edge (no control
 * characters, so no newline). Pure.
 */
export function warmJobStream(spec: JobSpec, runtime: RuntimeDefinition): Buffer {
  const files = warmJobFiles(spec, runtime, { wholeEnv: true, capOutputBytes: true })
  const dirs = new Set<string>([WARM_JOB.files, WARM_JOB.env, WARM_JOB.argv])
  for (const f of files) for (let d = f.path; d.includes('/'); ) dirs.add((d = d.slice(0, d.lastIndexOf('/'))))
  const parts: Buffer[] = [Buffer.from(WARM_GO)]
  for (const d of [...dirs].sort((a, b) => a.length - b.length)) parts.push(Buffer.from(`d 0 ${d}\n`))
  for (const f of files) {
    const content = Buffer.from(f.content)
    parts.push(Buffer.from(`f ${content.length} ${f.path}\n`), content)
  }
  parts.push(Buffer.from('e 0 -\n'), Buffer.from(spec.stdin))
  return Buffer.concat(parts)
}

/**
 * The command of a warm pod: checks its seccomp filter, waits for its job on stdin
 * (warmJobStream), writes it under JOB_FILES_MOUNT (a memory-backed volume, empty until
 * then), then runs it as a cold pod's launcher does: files copied to the workspace,
 * exactly the job's environment (`env -i`), its process limit, and stdout and stderr
 * capped inside the sandbox; the rest of stdin is the program's. Only `head -c` reads
 * the frames' bytes: it never reads past its count, and dash's `read` reads a pipe a
 * byte at a time, so nothing of the program's stdin is taken. Exits 125, having run
 * nothing of the job's, on anything but a well-formed job.
 */
export function warmStreamLauncherArgv(options: { requireSeccomp?: boolean } = {}): string[] {
  const job = (part: string) => `${JOB_FILES_MOUNT}/${part}`
  const script = [
    ...(options.requireSeccomp === false ? [] : [seccompCheckScript()]),
    readGoLine(),
    'while IFS= read -r h; do',
    '  k=${h%% *}; r=${h#* }; c=${r%% *}; w=${r#* }',
    '  case $k in',
    `    d) mkdir -p "${JOB_FILES_MOUNT}/$w" || exit 125 ;;`,
    `    f) head -c "$c" >"${JOB_FILES_MOUNT}/$w" || exit 125 ;;`,
    '    e) break ;;',
    '    *) exit 125 ;;',
    '  esac',
    'done',
    `[ "$k" = e ] && read -r lim <${job(WARM_JOB.pids)} && read -r cap <${job(WARM_JOB.cap)} || exit 125`,
    appendFileWords(job(WARM_JOB.env)),
    appendFileWords(job(WARM_JOB.argv)),
    // The program runs as a background list, whose stdin would be /dev/null: it gets the
    // launcher's own (the rest of the attach) through fd 3, closed again for the program.
    'exec 3<&0',
    cappedRun(
      `cp -R ${job(WARM_JOB.files)}/. ${WORKSPACE}/`,
      '"$cap"',
      `ulimit -p $((lim + ${CAP_HELPER_PROCESSES})) && `,
      'exec env -i -- "$@" <&3 3<&-',
    ),
  ].join('\n')
  return ['/bin/sh', '-c', script, 'airlock']
}

/**
 * The argv of a warm sandbox: booted before any job, it waits for the worker's go
 * line on stdin, which only the worker holds, then reads its job (warmJobFiles) and
 * runs it as a cold sandbox would: the files copied to the workspace, the process
 * limit lowered to the job's before anything of the job runs, the rest of stdin the
 * program's. dash reads a pipe a byte at a time, so the go line takes nothing of the
 * program's stdin. Exits 125, having run nothing, when stdin closes without a go (the
 * pool let the sandbox go).
 *
 * The environment: the sandbox booted with the fixed one (sandboxEnv of no variables),
 * and the job's own are exported last, from words alone, so a job variable named like
 * one of the launcher's cannot change what the launcher does; dash passes on what it
 * imported and what it exported, as under a cold start's `sh -c`. No `env -i`: an exec
 * fewer, a few milliseconds in gVisor.
 */
export function warmLauncherArgv(): string[] {
  const job = (part: string) => `${JOB_FILES_MOUNT}/${part}`
  const script = [
    readGoLine(),
    appendFileWords(job(WARM_JOB.env)),
    'set -- "$@" --',
    appendFileWords(job(WARM_JOB.argv)),
    `read -r p <${job(WARM_JOB.pids)} || exit 125`,
    `cp -R ${job(WARM_JOB.files)}/. ${WORKSPACE}/ || exit 125`,
    'ulimit -p "$p" || exit 125',
    'while [ "$1" != -- ]; do export "$1"; shift; done',
    'shift',
    'exec "$@"',
  ].join('\n')
  return ['/bin/sh', '-c', script, 'airlock']
}
