import { Type, type Static, type TSchema } from 'typebox'
import { MAX_ARG_LENGTH, MAX_ARGS, type JobRequest } from '../../../core/job-spec.js'
import { BoundedValidator, type ErrorBudget } from '../../plugins/bounded-validator.js'
import { findLanguage } from './catalog.js'
import { Judge0Error, schemaErrors, type FieldErrors } from './errors.js'

/**
 * A Judge0 submission as a client sends it -> an Airlock job request. Pure: every rule
 * that Judge0's model had (presence, the language, numbers above 0) and every refusal of
 * ours (network, callbacks, compiler options, extra files) is a 422 naming the attribute,
 * in Judge0's shape. Limits above the server's or tenant's maximum are left to the job
 * service, the one place that knows them.
 */

const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]))
// Rails read a number written as a string too; so do Judge0's clients.
const DECIMAL = '^\\s*[0-9]{1,9}(\\.[0-9]{1,9})?\\s*$'
const Num = (description: string) =>
  Nullable(Type.Union([Type.Number(), Type.String({ pattern: DECIMAL })], { description }))
const Text = (description: string, maxLength?: number) =>
  Nullable(Type.String({ description, ...(maxLength === undefined ? {} : { maxLength }) }))
/**
 * The longest command line: every argument at its longest, each quoted. It is split a
 * character at a time, and a 2 MB one cost 150 ms of the event loop before its 65th
 * word was refused.
 */
export const MAX_COMMAND_LINE_LENGTH = MAX_ARGS * (MAX_ARG_LENGTH + 3)
const Flag = (description: string) => Nullable(Type.Boolean({ description }))

const PROPERTIES = {
  source_code: Text("the program's text (base64 with base64_encoded=true)"),
  language_id: Nullable(
    Type.Union([Type.Integer(), Type.String({ pattern: '^\\s*[0-9]{1,9}\\s*$' })], {
      description: 'an integer language id (GET /languages)',
    }),
  ),
  compiler_options: Text('a string (refused here: the runtimes have no option slot)'),
  command_line_arguments: Text(
    `a string of at most ${MAX_COMMAND_LINE_LENGTH} characters: arguments, split like a shell (quotes, backslashes)`,
    MAX_COMMAND_LINE_LENGTH,
  ),
  stdin: Text('a string (base64 with base64_encoded=true)'),
  expected_output: Text('a string (base64 with base64_encoded=true)'),
  cpu_time_limit: Num('a number of seconds'),
  cpu_extra_time: Num('a number of seconds (accepted, not used)'),
  wall_time_limit: Num('a number of seconds'),
  memory_limit: Num('a number of kilobytes'),
  stack_limit: Num('a number of kilobytes (accepted, not used)'),
  max_processes_and_or_threads: Num('a whole number'),
  enable_per_process_and_thread_time_limit: Flag('false or null'),
  enable_per_process_and_thread_memory_limit: Flag('false or null'),
  max_file_size: Num('a number of kilobytes (accepted, not used)'),
  number_of_runs: Num('1 or null'),
  redirect_stderr_to_stdout: Flag('true, false or null'),
  callback_url: Text('null (callbacks are refused here)'),
  additional_files: Text('null (additional files are refused here)'),
  enable_network: Flag('false or null'),
}

export const SubmissionSchema = Type.Object(PROPERTIES, { additionalProperties: false, title: 'Judge0Submission' })
export type Judge0Submission = Static<typeof SubmissionSchema>

/** What each attribute must be, for the 422 a wrong one gets. */
export const ATTRIBUTE_DESCRIPTIONS: Record<string, string | undefined> = Object.fromEntries(
  Object.entries(PROPERTIES).map(([name, schema]) => [
    name,
    (schema as { anyOf?: { description?: string }[] }).anyOf?.[0]?.description,
  ]),
)

const submissionValidator = new BoundedValidator(SubmissionSchema)

/**
 * Checks one submission of a batch against the schema the single route declares; the
 * batch's submissions share one budget for listing what is wrong with them.
 */
export function checkSubmission(value: unknown, budget: ErrorBudget): Judge0Submission {
  const problems = submissionValidator.problems(value, budget)
  if (!problems) return value as Judge0Submission
  throw Judge0Error.fields(schemaErrors(problems, ATTRIBUTE_DESCRIPTIONS))
}

/** Judge0's base64 (Ruby's encode64 wraps lines; padding may be left off). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function decoded(value: string, name: string, errors: FieldErrors): string {
  const compact = value.replace(/\s+/g, '')
  if (!BASE64.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) {
    ;(errors[name] ??= []).push('is not valid base64 (base64_encoded=true)')
    return ''
  }
  // Jobs carry text: bytes that are not UTF-8 would be changed on the way (each bad byte
  // to U+FFFD, three bytes of its own), so they are refused, not run as something else.
  try {
    return UTF8.decode(Buffer.from(compact, 'base64'))
  } catch {
    ;(errors[name] ??= []).push('decodes to bytes that are not UTF-8 text (base64_encoded=true)')
    return ''
  }
}

// ignoreBOM: a leading byte order mark is kept, as Buffer's decoding keeps it.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Splits command_line_arguments as a POSIX shell splits words, without expanding anything:
 * whitespace separates, single quotes keep everything, double quotes keep all but `\"`,
 * `\\`, `\$` and `` \` ``, a backslash outside quotes keeps the next character. Judge0 hands
 * the string to a shell; here no shell runs, so `$x`, globs and `;` stay as written.
 * Undefined when a quote is not closed.
 */
export function splitCommandLine(line: string, maxWords = MAX_ARGS): string[] | undefined {
  const words: string[] = []
  let word: string | undefined
  // One word past the most is enough to refuse the line: the rest is not split.
  for (let i = 0; i < line.length && words.length <= maxWords; i++) {
    const c = line[i]!
    if (c === "'") {
      const end = line.indexOf("'", i + 1)
      if (end < 0) return undefined
      word = (word ?? '') + line.slice(i + 1, end)
      i = end
    } else if (c === '"') {
      let text = ''
      for (i++; ; i++) {
        if (i >= line.length) return undefined
        const d = line[i]!
        if (d === '"') break
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) text += line[++i]
        else if (d === '\\' && line[i + 1] === '\n') i++
        else text += d
      }
      word = (word ?? '') + text
    } else if (c === '\\') {
      if (i + 1 < line.length && line[i + 1] !== '\n') word = (word ?? '') + line[i + 1]
      i++
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else {
      word = (word ?? '') + c
    }
  }
  if (word !== undefined) words.push(word)
  return words
}

function number(value: number | string | null | undefined): number | undefined {
  return value === null || value === undefined ? undefined : Number(value)
}

/** Seconds, Judge0's unit for time -> milliseconds; at least Airlock's 100 ms. */
function milliseconds(name: string, value: number | undefined, errors: FieldErrors): number | undefined {
  if (value === undefined) return undefined
  if (!(value > 0)) (errors[name] ??= []).push('must be greater than 0')
  else if (value < 0.1) (errors[name] ??= []).push('must be at least 0.1 (seconds)')
  return Math.round(value * 1000)
}

/** The parts of a submission that go into the job, and the choices the adapter keeps for itself. */
export interface TranslatedSubmission {
  request: JobRequest
  languageId: number
}

/**
 * A schema-valid submission -> the job request, or a Judge0Error (422) naming every
 * attribute that is wrong. `base64`: source_code, stdin and expected_output are base64.
 *
 * expected_output and redirect_stderr_to_stdout make the job one test case: the worker then
 * compares stdout with the rule OUTPUT_MATCH_RULE states (core/test-cases.ts), so the
 * comparison is the one Airlock makes everywhere, and the job's record says which of the two
 * the submission asked for (a case with or without an expectation: see submission-result.ts),
 * since a job read back carries no spec.
 */
export function toJobRequest(body: Judge0Submission, base64: boolean): TranslatedSubmission {
  const errors: FieldErrors = {}
  const fail = (name: string, message: string) => (errors[name] ??= []).push(message)
  const text = (name: 'source_code' | 'stdin' | 'expected_output') => {
    const value = body[name]
    if (value === null || value === undefined || value === '') return undefined
    return base64 ? decoded(value, name, errors) : value
  }

  const source = text('source_code')
  if (source === undefined) fail('source_code', "can't be blank")
  const languageId = number(body.language_id)
  const language = languageId === undefined ? undefined : findLanguage(languageId)
  if (languageId === undefined) fail('language_id', "can't be blank")
  else if (!language) fail('language_id', `language with id ${languageId} doesn't exist`)

  // Refusals: each names why, in the attribute's own entry.
  if (body.enable_network === true) fail('enable_network', 'this option cannot be enabled')
  if (body.callback_url)
    fail(
      'callback_url',
      'callbacks are not supported: this server makes no outbound requests; poll GET /submissions/{token} (or use wait=true)',
    )
  if (body.compiler_options)
    fail(
      'compiler_options',
      "compiler options are not supported: each language's compile command is fixed (GET /languages/{id} shows it)",
    )
  if (body.additional_files) fail('additional_files', 'additional files are not supported: send a single source_code')
  if (body.enable_per_process_and_thread_time_limit === true)
    fail('enable_per_process_and_thread_time_limit', 'this option cannot be enabled')
  if (body.enable_per_process_and_thread_memory_limit === true)
    fail('enable_per_process_and_thread_memory_limit', 'this option cannot be enabled')
  const runs = number(body.number_of_runs)
  if (runs !== undefined && runs !== 1)
    fail('number_of_runs', runs > 1 ? 'must be less than or equal to 1' : 'must be greater than 0')
  for (const name of ['cpu_extra_time', 'stack_limit', 'max_file_size'] as const) {
    const v = number(body[name])
    if (v !== undefined && !(v > 0)) fail(name, 'must be greater than 0')
  }

  const limits: NonNullable<JobRequest['limits']> = {}
  const wall = milliseconds('wall_time_limit', number(body.wall_time_limit), errors)
  const cpu = milliseconds('cpu_time_limit', number(body.cpu_time_limit), errors)
  // Airlock limits wall-clock time only: the wall limit when given, else the CPU one.
  const timeoutMs = wall ?? cpu
  if (timeoutMs !== undefined) limits.timeoutMs = timeoutMs
  const memoryKb = number(body.memory_limit)
  if (memoryKb !== undefined) {
    if (!(memoryKb > 0)) fail('memory_limit', 'must be greater than 0')
    else if (memoryKb < 16 * 1024) fail('memory_limit', 'must be at least 16384 (kilobytes)')
    else limits.memoryMb = Math.ceil(memoryKb / 1024)
  }
  const pids = number(body.max_processes_and_or_threads)
  if (pids !== undefined) {
    if (!(pids >= 1) || !Number.isInteger(pids))
      fail('max_processes_and_or_threads', 'must be a whole number greater than 0')
    else limits.pids = pids
  }

  let args: string[] = []
  if (body.command_line_arguments) {
    const split = splitCommandLine(body.command_line_arguments)
    if (split === undefined) fail('command_line_arguments', 'has a quote that is not closed')
    else args = split
  }
  const stdin = text('stdin') ?? ''
  const expectedOutput = text('expected_output')
  const redirect = body.redirect_stderr_to_stdout === true
  if (redirect && expectedOutput !== undefined) {
    fail(
      'redirect_stderr_to_stdout',
      'cannot be combined with expected_output here: expected_output is compared with stdout alone',
    )
  }

  if (Object.keys(errors).length > 0) throw Judge0Error.fields(errors)
  const run =
    expectedOutput !== undefined || redirect
      ? { tests: [{ stdin, args, ...(expectedOutput !== undefined ? { expectedOutput } : {}) }] }
      : { stdin, args }
  return {
    languageId: languageId!,
    request: {
      runtime: language!.runtime.name,
      source: source!,
      ...run,
      ...(Object.keys(limits).length > 0 ? { limits } : {}),
    },
  }
}
