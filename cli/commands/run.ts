import { fstatSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { extname, resolve } from 'node:path'
import type { Airlock, Job, JobRequest, JobStatus } from '../../sdk/src/index.js'
import { exitCodeForJob } from '../exit-codes.js'
import { findRuntime, RUNTIMES } from '../../core/runtimes.js'
import { parseDurationMs, UsageError } from '../settings.js'
import { collectProject } from './project.js'
import { mustBeEmpty, placeArtifacts } from '../artifact-dir.js'
import { jsonText, print, streamWriter, TerminalFilter } from '../terminal.js'

export const RUNTIME_BY_EXTENSION: Record<string, string> = {
  '.py': 'python',
  '.js': 'node',
  '.mjs': 'node',
  '.cjs': 'node',
  '.sh': 'bash',
  '.c': 'c',
  '.cpp': 'cpp',
  '.cc': 'cpp',
  '.cxx': 'cpp',
  '.java': 'java',
  '.go': 'go',
  '.rs': 'rust',
}

export interface RunFlags {
  runtime?: string
  /** More files or directories of the project, beside FILE. */
  file?: string[]
  entrypoint?: string
  /** Where the job's artifacts are written once it ends. */
  out?: string
  /** A file for the program's stdin, '-' for this stdin, or false (--no-stdin): none, even when piped. */
  stdin?: string | false
  timeout?: string
  memory?: string
  cpus?: string
  pids?: string
  output?: string
  env?: string[]
  /** A JSON file with the test cases: [{stdin, args?, expectedOutput?}]. */
  tests?: string
  json?: boolean
  /** Sent as the submit's Idempotency-Key: the same key and program make one job however often run. */
  idempotencyKey?: string
}

/** A whole number flag -> its value. */
function wholeNumber(flag: string, value: string, unit: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(value))
    throw new UsageError(`${flag} takes ${unit} as a whole number, got ${JSON.stringify(value)}`)
  return Number(value)
}

/**
 * A program (a file, a project's directory, or `-`: the source from this stdin) and flags
 * -> the job request. `pipedStdin`: this process's stdin, when it is a pipe or a file
 * (`echo hi | airlock run a.py`), given to the program unless --stdin says otherwise.
 */
export async function buildRequest(
  file: string,
  args: string[],
  flags: RunFlags,
  readStdin: () => Promise<string>,
  pipedStdin = false,
): Promise<JobRequest> {
  const fromStdin = file === '-'
  if (flags.runtime !== undefined && !findRuntime(flags.runtime))
    throw new UsageError(`unknown runtime ${flags.runtime}: one of ${RUNTIMES.map((r) => r.name).join(', ')}`)
  if (fromStdin && flags.stdin === '-')
    throw new UsageError("stdin carries the program (-), so it cannot also be the program's stdin (--stdin -)")
  if (fromStdin && !flags.runtime) throw new UsageError('a program read from stdin (-) needs --runtime')
  const given = flags.runtime === undefined ? undefined : findRuntime(flags.runtime)!.defaultEntrypoint
  const candidates = given ? [given] : [...new Set(RUNTIMES.map((r) => r.defaultEntrypoint))]
  const project = fromStdin
    ? { files: [{ path: given!, content: await readStdin() }], entrypoint: given! }
    : await collectProject(file, flags.file ?? [], {
        ...(flags.entrypoint ? { entrypoint: flags.entrypoint } : {}),
        candidates,
      })
  const entrypoint = project.entrypoint
  const runtime = flags.runtime ?? RUNTIME_BY_EXTENSION[extname(entrypoint)]
  if (!runtime) throw new UsageError(`cannot tell the runtime of ${entrypoint} from its extension; pass --runtime`)
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
    if (!/^[0-9]{1,4}(\.[0-9]{1,3})?$/.test(flags.cpus) || Number(flags.cpus) <= 0)
      throw new UsageError(`--cpus takes a number of CPUs such as 0.5 or 2, got ${JSON.stringify(flags.cpus)}`)
    limits.cpus = Number(flags.cpus)
  }
  let tests: JobRequest['tests']
  if (flags.tests !== undefined) {
    const text = await readFile(flags.tests, 'utf8').catch((err: Error) => {
      throw new UsageError(`cannot read ${flags.tests}: ${err.message}`)
    })
    try {
      tests = JSON.parse(text) as JobRequest['tests']
    } catch (err) {
      throw new UsageError(`${flags.tests} is not JSON: ${(err as Error).message}`)
    }
    if (!Array.isArray(tests))
      throw new UsageError(
        `${flags.tests} must hold a JSON array of test cases: [{"stdin": "...", "expectedOutput": "..."}]`,
      )
  }
  let stdin: string | undefined
  if (flags.stdin === '-' || (flags.stdin === undefined && pipedStdin && !fromStdin)) stdin = await readStdin()
  else if (typeof flags.stdin === 'string')
    stdin = await readFile(flags.stdin, 'utf8').catch((err: Error) => {
      throw new UsageError(`cannot read ${flags.stdin}: ${err.message}`)
    })
  return {
    runtime,
    files: project.files,
    entrypoint,
    ...(args.length > 0 ? { args } : {}),
    ...(stdin !== undefined ? { stdin } : {}),
    ...(Object.keys(env).length > 0 ? { env } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...(tests ? { tests } : {}),
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
    const safe = new TerminalFilter().push(text)
    this.timer = setInterval(() => this.out.write(`\r${FRAMES[this.frame++ % FRAMES.length]} ${safe}`), 80)
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
  if (flags.out !== undefined) await mustBeEmpty(flags.out)
  const request = await buildRequest(file, args, flags, () => readAll(process.stdin), stdinIsPiped())
  const spinner = new Spinner(process.stderr)
  const { id } = await client.jobs.create(
    request,
    flags.idempotencyKey === undefined ? {} : { idempotencyKey: flags.idempotencyKey },
  )
  const onSigint = () => {
    spinner.clear()
    print(process.stderr, `\nairlock: cancelling ${id}\n`)
    void client.jobs.cancel(id).catch(() => undefined)
  }
  process.once('SIGINT', onSigint)
  let job: Job | undefined
  const write = { stdout: streamWriter(process.stdout), stderr: streamWriter(process.stderr) }
  try {
    spinner.show(`queued ${id}`)
    for await (const event of client.jobs.stream(id)) {
      if (event.type === 'status' && (event.status as JobStatus) !== 'queued') spinner.clear()
      if (event.type === 'log' && !flags.json) {
        spinner.clear()
        write[event.stream === 'stderr' ? 'stderr' : 'stdout'](event.data)
      }
      if (event.type === 'step' && !flags.json) {
        spinner.clear()
        if (event.step === 'compile') spinner.show('compiling')
        else if (event.step === 'test') print(process.stderr, `airlock: test case ${event.index}\n`)
      }
      if (event.type === 'end') job = event.job
    }
  } catch (err) {
    print(process.stderr, `airlock: the output stream failed (${(err as Error).message}); waiting for the result\n`)
  } finally {
    spinner.clear()
    process.removeListener('SIGINT', onSigint)
  }
  job ??= await client.jobs.wait(id)
  if (flags.out !== undefined) await writeArtifacts(client, job, flags.out)
  if (flags.json) print(process.stdout, `${jsonText(job)}\n`)
  else {
    reportSteps(job)
    if (job.status !== 'succeeded' && job.status !== 'failed')
      print(process.stderr, `airlock: job ${id} ${job.status}${job.reason ? `: ${job.reason}` : ''}\n`)
  }
  return exitCodeForJob(job)
}

/** A compile that failed (with the compiler's output) and each test case's verdict, on stderr. */
function reportSteps(job: Job): void {
  if (job.compile && job.compile.status !== 'succeeded') {
    print(process.stderr, job.compile.stdout + job.compile.stderr)
    print(
      process.stderr,
      `airlock: the compile ${job.compile.status === 'timeout' ? 'ran past its time limit' : 'failed'}; nothing was run\n`,
    )
  }
  job.tests.forEach((c, i) => {
    const how = c.status === 'runtime-error' ? ` (${c.signal ?? `exit ${c.exitCode}`})` : ''
    print(process.stderr, `airlock: test case ${i + 1}: ${c.status}${how}, ${c.timeMs ?? '?'} ms\n`)
  })
}

/**
 * Whether this process's stdin is a pipe or a file someone gave it (`cmd | airlock run`,
 * `< file`): then it is the program's. A terminal, /dev/null, or a socket a parent
 * process holds open (and may never close) is not read.
 */
function stdinIsPiped(): boolean {
  try {
    const st = fstatSync(0)
    return st.isFIFO() || st.isFile()
  } catch {
    return false
  }
}

/** The job's artifacts under `dir`, at the paths the job gave them. */
async function writeArtifacts(client: Airlock, job: Job, dir: string): Promise<void> {
  const paths = job.artifacts.map((a) => a.path)
  await placeArtifacts(dir, paths, (path) => client.jobs.artifact(job.id, path))
  if (paths.length > 0) print(process.stderr, `airlock: ${paths.length} artifact(s) written to ${resolve(dir)}\n`)
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
  return Buffer.concat(chunks).toString('utf8')
}
