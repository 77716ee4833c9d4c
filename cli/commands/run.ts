import { readFile } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import type { Airlock, Job, JobRequest, JobStatus } from '../../sdk/src/index.js'
import { exitCodeForJob } from '../exit-codes.js'
import { findRuntime, RUNTIMES } from '../../core/runtimes.js'
import { parseDurationMs, UsageError } from '../settings.js'

const RUNTIME_BY_EXTENSION: Record<string, string> = { '.py': 'python', '.js': 'node', '.mjs': 'node', '.cjs': 'node', '.sh': 'bash' }

export interface RunFlags {
  runtime?: string
  stdin?: string
  timeout?: string
  memory?: string
  cpus?: string
  pids?: string
  output?: string
  env?: string[]
  json?: boolean
}

/** A whole number flag -> its value. */
function wholeNumber(flag: string, value: string, unit: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(value)) throw new UsageError(`${flag} takes ${unit} as a whole number, got ${JSON.stringify(value)}`)
  return Number(value)
}

/** A file (`-`: the source from this stdin) and flags -> the job request. */
export async function buildRequest(file: string, args: string[], flags: RunFlags, readStdin: () => Promise<string>): Promise<JobRequest> {
  const fromStdin = file === '-'
  const runtime = flags.runtime ?? RUNTIME_BY_EXTENSION[extname(file)]
  if (!runtime) throw new UsageError(fromStdin ? 'a program read from stdin (-) needs --runtime' : `cannot tell the runtime of ${file} from its extension; pass --runtime`)
  if (fromStdin && flags.stdin === '-') throw new UsageError("stdin carries the program (-), so it cannot also be the program's stdin (--stdin -)")
  const source = fromStdin
    ? await readStdin()
    : await readFile(file, 'utf8').catch((err: Error) => {
        throw new UsageError(`cannot read ${file}: ${err.message}`)
      })
  const entrypoint = fromStdin ? findRuntime(runtime)?.defaultEntrypoint : basename(file)
  if (!entrypoint) throw new UsageError(`unknown runtime ${runtime}: one of ${RUNTIMES.map((r) => r.name).join(', ')}`)
  const env: Record<string, string> = {}
  for (const pair of flags.env ?? []) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new UsageError(`--env takes NAME=value, got ${JSON.stringify(pair)}`)
    env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  const limits: NonNullable<JobRequest['limits']> = {}
  if (flags.timeout !== undefined) limits.timeoutMs = parseDurationMs(flags.timeout)
  if (flags.memory !== undefined) limits.memoryMb = wholeNumber('--memory', flags.memory, 'MiB')
  if (flags.pids !== undefined) limits.pids = wholeNumber('--pids', flags.pids, 'processes')
  if (flags.output !== undefined) limits.outputBytes = wholeNumber('--output', flags.output, 'bytes')
  if (flags.cpus !== undefined) {
    if (!/^[0-9]{1,4}(\.[0-9]{1,3})?$/.test(flags.cpus) || Number(flags.cpus) <= 0) throw new UsageError(`--cpus takes a number of CPUs such as 0.5 or 2, got ${JSON.stringify(flags.cpus)}`)
    limits.cpus = Number(flags.cpus)
  }
  let stdin: string | undefined
  if (flags.stdin === '-') stdin = await readStdin()
  else if (flags.stdin !== undefined) stdin = await readFile(flags.stdin, 'utf8').catch((err: Error) => {
    throw new UsageError(`cannot read ${flags.stdin}: ${err.message}`)
  })
  return {
    runtime,
    files: [{ path: entrypoint, content: source }],
    entrypoint,
    ...(args.length > 0 ? { args } : {}),
    ...(stdin !== undefined ? { stdin } : {}),
    ...(Object.keys(env).length > 0 ? { env } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  }
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/** A one-line "queued" indicator on a terminal; nothing when stderr is not one. */
class Spinner {
  private timer: NodeJS.Timeout | undefined
  private frame = 0
  constructor(private readonly out: NodeJS.WriteStream) {}
  show(text: string): void {
    if (!this.out.isTTY || this.timer) return
    this.timer = setInterval(() => this.out.write(`\r${FRAMES[this.frame++ % FRAMES.length]} ${text}`), 80)
  }
  clear(): void {
    if (!this.timer) return
    clearInterval(this.timer)
    this.timer = undefined
    this.out.write('\r\x1b[K')
  }
}

/**
 * `airlock run FILE`: submits, streams the program's stdout and stderr to ours as it
 * runs, and exits with the job's exit code. Ctrl-C cancels the job.
 */
export async function runCommand(client: Airlock, file: string, args: string[], flags: RunFlags): Promise<number> {
  const request = await buildRequest(file, args, flags, () => readAll(process.stdin))
  const spinner = new Spinner(process.stderr)
  const { id } = await client.jobs.create(request)
  const onSigint = () => {
    spinner.clear()
    process.stderr.write(`\nairlock: cancelling ${id}\n`)
    void client.jobs.cancel(id).catch(() => undefined)
  }
  process.once('SIGINT', onSigint)
  let job: Job | undefined
  try {
    spinner.show(`queued ${id}`)
    for await (const event of client.jobs.stream(id)) {
      if (event.type === 'status' && (event.status as JobStatus) !== 'queued') spinner.clear()
      if (event.type === 'log' && !flags.json) {
        spinner.clear()
        ;(event.stream === 'stderr' ? process.stderr : process.stdout).write(event.data)
      }
      if (event.type === 'end') job = event.job
    }
  } catch (err) {
    process.stderr.write(`airlock: the output stream failed (${(err as Error).message}); waiting for the result\n`)
  } finally {
    spinner.clear()
    process.removeListener('SIGINT', onSigint)
  }
  job ??= await client.jobs.wait(id)
  if (flags.json) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`)
  else if (job.status !== 'succeeded' && job.status !== 'failed') process.stderr.write(`airlock: job ${id} ${job.status}${job.reason ? `: ${job.reason}` : ''}\n`)
  return exitCodeForJob(job)
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
  return Buffer.concat(chunks).toString('utf8')
}
