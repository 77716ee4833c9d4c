import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { ExecutorError } from '../executor.js'

const execFileP = promisify(execFile)

export interface RunscOptions {
  binary: string
  /** runsc's state directory; one per worker process, so reaping never touches a live worker's sandboxes. */
  root: string
  platform: string
}

/** A thin wrapper over the runsc command line; every sandbox runs with no network. */
export class Runsc {
  constructor(readonly options: RunscOptions) {}

  private globalArgs(logFile?: string): string[] {
    const args = [`--root=${this.options.root}`, `--platform=${this.options.platform}`, '--network=none']
    // runsc writes its own messages to stderr unless told otherwise; that stderr is the
    // job's, so send them to a file of ours instead.
    if (logFile) args.push(`--log=${logFile}`, '--log-format=text')
    return args
  }

  async version(): Promise<string> {
    const { stdout } = await execFileP(this.options.binary, ['--version'], { timeout: 10_000 })
    const m = /runsc version (\S+)/.exec(stdout)
    return m?.[1] ?? stdout.trim().split('\n')[0] ?? 'unknown'
  }

  /**
   * Creates the sandbox. Its stdio is this child's stdio, so the returned process's
   * pipes carry the job's stdin, stdout and stderr until the sandbox exits.
   */
  create(id: string, bundle: string, logFile: string): ChildProcessWithoutNullStreams {
    return spawn(this.options.binary, [...this.globalArgs(logFile), 'create', `--bundle=${bundle}`, id], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {},
    })
  }

  async start(id: string, logFile: string): Promise<void> {
    await this.exec(['start', id], logFile, 30_000)
  }

  /** Waits for the container's process; returns its exit status (128 + n for signal n). */
  async wait(id: string, logFile: string): Promise<number | null> {
    try {
      const { stdout } = await execFileP(this.options.binary, [...this.globalArgs(logFile), 'wait', id], { env: {} })
      return parseWaitOutput(stdout)
    } catch (err) {
      // runsc wait exits with the program's status, so a non-zero exit is still an answer.
      const stdout = (err as { stdout?: string }).stdout ?? ''
      const status = parseWaitOutput(stdout)
      if (status !== null) return status
      return null
    }
  }

  async kill(id: string, logFile: string): Promise<void> {
    await this.exec(['kill', '--all', id, 'KILL'], logFile, 10_000).catch(() => undefined)
  }

  async delete(id: string, logFile?: string): Promise<void> {
    await this.exec(['delete', '--force', id], logFile, 30_000).catch(() => undefined)
  }

  async list(): Promise<string[]> {
    try {
      const { stdout } = await execFileP(this.options.binary, [...this.globalArgs(), 'list', '-quiet'], { timeout: 30_000, env: {} })
      return stdout.split('\n').map((s) => s.trim()).filter(Boolean)
    } catch {
      return []
    }
  }

  private async exec(args: string[], logFile: string | undefined, timeoutMs: number): Promise<void> {
    try {
      await execFileP(this.options.binary, [...this.globalArgs(logFile), ...args], { timeout: timeoutMs, env: {} })
    } catch (err) {
      const tail = logFile ? await logTail(logFile) : ''
      throw new ExecutorError(`runsc ${args[0]} failed: ${(err as Error).message.split('\n')[0]}${tail ? `; runsc log: ${tail}` : ''}`, { cause: err })
    }
  }
}

export function parseWaitOutput(stdout: string): number | null {
  try {
    const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { exitStatus?: unknown }
    return typeof parsed.exitStatus === 'number' ? parsed.exitStatus : null
  } catch {
    return null
  }
}

export async function logTail(logFile: string, lines = 5): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-lines).join(' | ')
}
