import { AirlockError, type ErrorDetail } from '../../../core/errors.js'
import { JobRequestSchema, type JobFile, type JobRequest } from '../../../core/job-spec.js'
import type { RuntimeDefinition } from '../../../core/runtimes.js'
import { BoundedValidator } from '../../plugins/bounded-validator.js'
import type { LimitField, PistonExecute } from './schemas.js'

/**
 * A Piston execute request as an Airlock job request, and the names of its parts both
 * ways, so every refusal names the field the client sent. Pure.
 */

type JobLimit = 'timeoutMs' | 'compileTimeoutMs' | 'memoryMb'

/**
 * Where each Piston limit goes. Airlock limits wall-clock time, not CPU time: a
 * CPU-time limit caps the wall-clock one (a single-threaded program's CPU time is at
 * most its wall time, so this is never looser than asked). The sandbox has one memory
 * limit for the compile and the run, the run's; compile_memory_limit is only checked to
 * be a number in range, and not applied, so no quota is asked of it (docs/piston.md).
 */
const LIMIT_TARGETS: Record<LimitField, JobLimit | undefined> = {
  run_timeout: 'timeoutMs',
  run_cpu_time: 'timeoutMs',
  compile_timeout: 'compileTimeoutMs',
  compile_cpu_time: 'compileTimeoutMs',
  run_memory_limit: 'memoryMb',
  compile_memory_limit: undefined,
}

/** The Piston field a job limit came from, for messages. */
const LIMIT_SOURCES: Record<JobLimit, string> = {
  timeoutMs: 'run_timeout',
  compileTimeoutMs: 'compile_timeout',
  memoryMb: 'run_memory_limit',
}

const MIB = 1024 * 1024
const HEX = /^(?:[0-9a-fA-F]{2})*$/

/** A job request's JSON path (/files/0/content, /limits/timeoutMs) in the Piston request's terms. */
export function pistonField(path: string): string {
  const limit = /^\/limits\/(\w+)$/.exec(path)?.[1] as JobLimit | undefined
  if (limit) return `${LIMIT_SOURCES[limit] ?? limit} (as ${limit})`
  const parts = path.split('/').filter(Boolean)
  return (
    parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : `${i > 0 ? '.' : ''}${p === 'path' ? 'name' : p}`)).join('') ||
    'request'
  )
}

function limitValue(body: PistonExecute, field: LimitField): number | undefined {
  const value = body[field]
  // Piston's "not set": absent, null or 0; -1 is its clients' "no limit" for memory.
  if (value === undefined || value === null || value === 0) return undefined
  if (value === -1 && field.endsWith('memory_limit')) return undefined
  if (value < 0)
    throw new AirlockError('AIRLOCK_ERR_VALIDATION', `${field} must be non-negative`, [
      { path: `/${field}`, message: 'negative' },
    ])
  return value
}

function jobLimits(body: PistonExecute): JobRequest['limits'] {
  const limits: Partial<Record<JobLimit, number>> = {}
  for (const [field, target] of Object.entries(LIMIT_TARGETS) as [LimitField, JobLimit | undefined][]) {
    const value = limitValue(body, field)
    if (value === undefined || target === undefined) continue
    const converted = target === 'memoryMb' ? Math.ceil(value / MIB) : Math.ceil(value)
    limits[target] = Math.min(limits[target] ?? converted, converted)
  }
  return Object.keys(limits).length > 0 ? limits : undefined
}

/** The extension of the runtime's usual file (.c of main.c); '' when it has none. */
function extensionOf(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1)
  const dot = name.lastIndexOf('.')
  return dot > 0 ? name.slice(dot) : ''
}

/**
 * Piston's files as the job's. The first UTF-8 file is the one run (Piston runs the
 * first of its "code files"); one without a name gets the runtime's usual name, and a
 * name without an extension gets the runtime's (Piston's C and C++ packages add .c and
 * .cpp too, and the compilers need them). Other unnamed files are file<i>.code, as in
 * Piston. hex becomes base64.
 */
function jobFiles(files: PistonExecute['files'], runtime: RuntimeDefinition): { files: JobFile[]; entrypoint: string } {
  const first = files.findIndex((f) => (f.encoding ?? 'utf8') === 'utf8')
  const entry = Math.max(first, 0)
  const jobFiles = files.map((file, i): JobFile => {
    let path = file.name ?? (i === entry ? runtime.defaultEntrypoint : `file${i}.code`)
    if (i === entry && extensionOf(path) === '') path += extensionOf(runtime.defaultEntrypoint)
    if (file.encoding === 'hex') {
      if (!HEX.test(file.content))
        throw new AirlockError('AIRLOCK_ERR_INVALID_FILE', `files[${i}].content is not hex (pairs of 0-9, a-f)`, [
          { path: `/files/${i}/content`, message: 'not hex' },
        ])
      return { path, content: Buffer.from(file.content, 'hex').toString('base64'), encoding: 'base64' }
    }
    return file.encoding === 'base64'
      ? { path, content: file.content, encoding: 'base64' }
      : { path, content: file.content }
  })
  return { files: jobFiles, entrypoint: jobFiles[entry]!.path }
}

const jobRequestCheck = new BoundedValidator(JobRequestSchema)

/**
 * The job a Piston request asks for, on `runtime`; an AirlockError (400) naming the
 * Piston field when it is out of the job's bounds. Piston adds a newline to stdin
 * that does not end with one; so does this, so programs read what they read there.
 */
export function toJobRequest(body: PistonExecute, runtime: RuntimeDefinition): JobRequest {
  const { files, entrypoint } = jobFiles(body.files, runtime)
  const stdin = body.stdin ?? ''
  const limits = jobLimits(body)
  const request: JobRequest = {
    runtime: runtime.name,
    files,
    entrypoint,
    args: body.args ?? [],
    stdin: stdin.endsWith('\n') ? stdin : `${stdin}\n`,
    ...(limits ? { limits } : {}),
  }
  const first = jobRequestCheck.problems(request)?.[0]
  if (first) {
    const detail: ErrorDetail = { path: first.instancePath, message: first.message }
    throw new AirlockError('AIRLOCK_ERR_VALIDATION', `${pistonField(first.instancePath)} ${first.message}`, [detail])
  }
  return request
}

/** An Airlock error's message in Piston's terms where it names job limits (limits above a maximum or quota). */
export function pistonMessage(message: string, details: readonly ErrorDetail[] | undefined): string {
  const limits = details?.filter((d) => d.path.startsWith('/limits/')) ?? []
  if (limits.length === 0) return message
  return limits.map((d) => `${pistonField(d.path)}: ${d.message}`).join('; ')
}
