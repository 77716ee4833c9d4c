import { readFile } from 'node:fs/promises'
import type { Airlock, Job, JobRequest, JobStatus, JobSummary } from '../../sdk/src/index.js'
import { EXIT } from '../exit-codes.js'
import { UsageError } from '../settings.js'
import { jsonText, print as printText, streamWriter } from '../terminal.js'

function print(json: boolean, data: unknown, human: () => string): void {
  printText(process.stdout, json ? `${jsonText(data)}\n` : `${human()}\n`)
}

/** Rows of cells -> aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')
}

export async function listJobs(
  client: Airlock,
  flags: { status?: string; limit?: string; cursor?: string; json?: boolean },
): Promise<number> {
  const limit = flags.limit === undefined ? undefined : Number(flags.limit)
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 100))
    throw new UsageError('--limit takes a whole number from 1 to 100')
  const page = await client.jobs.list({
    status: flags.status?.split(',') as JobStatus[] | undefined,
    limit,
    cursor: flags.cursor,
  })
  print(!!flags.json, page, () => {
    const rows = [
      ['ID', 'STATUS', 'RUNTIME', 'EXIT', 'CREATED'],
      ...page.items.map((j: JobSummary) => [
        j.id,
        j.status,
        j.runtime,
        j.exitCode === null ? '-' : String(j.exitCode),
        j.createdAt,
      ]),
    ]
    return table(rows) + (page.nextCursor ? `\n(more: --cursor ${page.nextCursor})` : '')
  })
  return EXIT.ok
}

export async function getJob(client: Airlock, id: string, flags: { json?: boolean }): Promise<number> {
  const job = await client.jobs.get(id)
  print(!!flags.json, job, () => describe(job))
  return EXIT.ok
}

function describe(job: Job): string {
  const lines = [
    `id:        ${job.id}`,
    `status:    ${job.status}${job.reason ? ` (${job.reason})` : ''}`,
    `runtime:   ${job.runtime}`,
    `exit code: ${job.exitCode ?? '-'}${job.signal ? ` (${job.signal})` : ''}`,
    `created:   ${job.createdAt}`,
    `timings:   queued ${job.timings.queuedMs ?? '-'} ms, startup ${job.timings.startupMs ?? '-'} ms, run ${job.timings.runMs ?? '-'} ms`,
  ]
  if (job.isolation)
    lines.push(
      `isolation: ${job.isolation.technology} (${job.isolation.runtime} ${job.isolation.version}, ${job.isolation.platform}), network ${job.isolation.network}`,
    )
  if (job.stdout) lines.push('--- stdout', job.stdout.replace(/\n$/, ''))
  if (job.stderr) lines.push('--- stderr', job.stderr.replace(/\n$/, ''))
  return lines.join('\n')
}

export async function jobLogs(client: Airlock, id: string, flags: { follow?: boolean }): Promise<number> {
  if (!flags.follow) {
    printText(process.stdout, await client.jobs.logs(id))
    return EXIT.ok
  }
  const write = { stdout: streamWriter(process.stdout), stderr: streamWriter(process.stderr) }
  for await (const event of client.jobs.stream(id)) {
    if (event.type === 'log') write[event.stream === 'stderr' ? 'stderr' : 'stdout'](event.data)
  }
  return EXIT.ok
}

export async function cancelJob(client: Airlock, id: string, flags: { json?: boolean }): Promise<number> {
  const job = await client.jobs.cancel(id)
  print(!!flags.json, job, () => `${job.id}: ${job.status}${job.status === 'running' ? ' (cancelling)' : ''}`)
  return EXIT.ok
}

export async function listRuntimes(client: Airlock, flags: { json?: boolean }): Promise<number> {
  const runtimes = await client.runtimes()
  print(!!flags.json, runtimes, () =>
    table([
      ['NAME', 'VERSION', 'ENTRYPOINT', 'DESCRIPTION'],
      ...runtimes.map((r) => [r.name, r.version ?? '-', r.defaultEntrypoint, r.description]),
    ]),
  )
  return EXIT.ok
}

export interface SubmitFlags {
  json?: boolean
  /** Sent as the batch's Idempotency-Key: each place of the array is then made once however often submitted. */
  idempotencyKey?: string
}

/**
 * `airlock jobs submit FILE`: the jobs of a JSON array ([{runtime, source | files, ...}],
 * '-' for stdin) in one request. Prints each job's id, or why it was refused; exits
 * `invalid` when any was refused.
 */
export async function submitJobs(client: Airlock, file: string, flags: SubmitFlags): Promise<number> {
  const text = await (file === '-' ? readStdin() : readFile(file, 'utf8')).catch((err: Error) => {
    throw new UsageError(`cannot read ${file}: ${err.message}`)
  })
  let jobs: unknown
  try {
    jobs = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`${file} is not JSON: ${(err as Error).message}`)
  }
  if (!Array.isArray(jobs) || jobs.length === 0) throw new UsageError(`${file} must hold a JSON array of jobs`)
  const result = await client.jobs.createBatch(
    jobs as JobRequest[],
    flags.idempotencyKey === undefined ? {} : { idempotencyKey: flags.idempotencyKey },
  )
  print(!!flags.json, result, () =>
    table([
      ['#', 'JOB', 'REFUSED'],
      ...result.items.map((i) => [
        String(i.index),
        'id' in i ? i.id : '-',
        'error' in i ? `${i.error.code}: ${i.error.message}` : '',
      ]),
    ]),
  )
  return result.refused > 0 ? EXIT.invalid : EXIT.ok
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
