import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { ExecutorError } from '../executor.js'

const execFileP = promisify(execFile)

export interface RunscOptions {
  /** runsc (gVisor), or runc: a plain container, only for measuring what gVisor costs. */
  kind?: 'runsc' | 'runc'
  binary: string
  /** runsc's state directory; one per worker process, so reaping never touches a live worker's sandboxes. */
  root: string
  platform: string
  /** none: loopback only. host: the host's network (insecure; tests only). */
  network: 'none' | 'host'
}

/** A thin wrapper over the runsc command line (and runc's, which takes the same verbs). */
export class Runsc {
  constructor(readonly options: RunscOptions) {}

  private get isRunc(): boolean {
    return this.options.kind === 'runc'
  }

  private globalArgs(logFile?: string): string[] {
    // --oci-seccomp: gVisor ignores the bundle's linux.seccomp without it (runc applies it always).
    const args = this.isRunc
      ? [`--root=${this.options.root}`]
      : [
          `--root=${this.options.root}`,
          `--platform=${this.options.platform}`,
          `--network=${this.options.network}`,
          '--oci-seccomp',
        ]
    // runsc writes its own messages to stderr unless told otherwise; that stderr is the
    // job's, so send them to a file of ours instead.
    if (logFile) args.push(`--log=${logFile}`, '--log-format=text')
    return args
  }

  async version(): Promise<string> {
    const { stdout } = await execFileP(this.options.binary, ['--version'], { timeout: 10_000 })
    const m = /(?:runsc|runc) version (\S+)/.exec(stdout)
    return m?.[1] ?? stdout.trim().split('\n')[0] ?? 'unknown'
  }

  /**
   * Creates, starts and waits for the sandbox in one process. `runsc run` must be the
   * one that waits: it is the sandbox's parent, and once a single-container sandbox
   * exits no other runsc process can learn its exit status. Exits with the program's
   * status (128 + n for signal n). The pid file appears once the sandbox exists.
   * The child's pipes carry the job's stdin, stdout and stderr.
   */
  run(id: string, bundle: string, logFile: string, pidFile: string): ChildProcessWithoutNullStreams {
    return spawn(
      this.options.binary,
      [...this.globalArgs(logFile), 'run', `--bundle=${bundle}`, `--pid-file=${pidFile}`, id],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: {},
      },
    )
  }

  async kill(id: string, logFile: string): Promise<void> {
    await this.exec(['kill', '--all', id, 'KILL'], logFile, 10_000).catch(() => undefined)
  }

  async delete(id: string, logFile?: string): Promise<void> {
    await this.exec(['delete', '--force', id], logFile, 30_000).catch(() => undefined)
  }

  async list(): Promise<string[]> {
    try {
      const { stdout } = await execFileP(
        this.options.binary,
        [...this.globalArgs(), 'list', this.isRunc ? '--quiet' : '-quiet'],
        { timeout: 30_000, env: {} },
      )
      return stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean)
    } catch {
      return []
    }
  }

  private async exec(args: string[], logFile: string | undefined, timeoutMs: number): Promise<void> {
    try {
      await execFileP(this.options.binary, [...this.globalArgs(logFile), ...args], { timeout: timeoutMs, env: {} })
    } catch (err) {
      const tail = logFile ? await logTail(logFile) : ''
      throw new ExecutorError(
        `${this.options.kind ?? 'runsc'} ${args[0]} failed: ${(err as Error).message.split('\n')[0]}${tail ? `; runsc log: ${tail}` : ''}`,
        { cause: err },
      )
    }
  }
}

export async function logTail(logFile: string, lines = 5): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-lines).join(' | ')
}
