import { isFinalStatus } from '../../../core/job-lifecycle/transitions.js'
import type { JobHead, JobView } from '../../../core/job-store.js'
import type { OutputWriter } from '../../services/output-writer.js'
import {
  ENCODED,
  plainAttributes,
  redirectsStderr,
  type AnsweredField,
  type StreamedField,
} from './submission-result.js'

/**
 * A submission as JSON, written in pieces: stdout and stderr are read from the job's
 * output under the process's output budget (OutputWriter.text) and each piece is handed
 * on before the next is read, so no response holds a job's whole output however many
 * times it is read (the pattern of OutputWriter.jobJson).
 */

export interface SubmissionJsonOptions {
  fields: readonly AnsweredField[]
  base64: boolean
  languageName: (id: number) => string | null
}

/** Text pieces -> base64 pieces, the bytes that do not fill a group of 3 carried to the next. */
export async function* base64Pieces(pieces: AsyncIterable<string>): AsyncGenerator<string> {
  let carry = Buffer.alloc(0)
  for await (const piece of pieces) {
    const bytes = carry.length > 0 ? Buffer.concat([carry, Buffer.from(piece, 'utf8')]) : Buffer.from(piece, 'utf8')
    const whole = bytes.length - (bytes.length % 3)
    if (whole > 0) yield bytes.subarray(0, whole).toString('base64')
    carry = Buffer.from(bytes.subarray(whole))
  }
  if (carry.length > 0) yield carry.toString('base64')
}

/** A JSON string value of `pieces`, or null when there are none (Judge0 has null for no output). */
async function* jsonText(pieces: AsyncGenerator<string>, base64: boolean): AsyncGenerator<string> {
  const parts = base64 ? base64Pieces(pieces) : pieces
  try {
    const first = await parts.next()
    if (first.done) {
      yield 'null'
      return
    }
    yield `"${jsonEscape(first.value)}`
    for await (const part of parts) yield jsonEscape(part)
    yield '"'
  } finally {
    await parts.return(undefined)
  }
}

function jsonEscape(text: string): string {
  return JSON.stringify(text).slice(1, -1)
}

/**
 * Where a streamed attribute's text comes from: nothing before the job ends (Judge0 has
 * null), stdout and stderr in the order they were written for redirect_stderr_to_stdout
 * (and then no stderr).
 */
function streamOf(view: JobView, field: StreamedField): 'stdout' | 'stderr' | 'both' | undefined {
  if (!isFinalStatus(view.status)) return undefined
  const redirect = redirectsStderr(view.job)
  if (field === 'stdout') return redirect ? 'both' : 'stdout'
  return redirect ? undefined : 'stderr'
}

async function* nothing(): AsyncGenerator<string> {}

/** One submission as a JSON object of the attributes asked for. */
export async function* submissionJson(
  head: JobHead,
  writer: OutputWriter,
  options: SubmissionJsonOptions,
  patient = false,
): AsyncGenerator<string> {
  // A submission is one test case at most: the rest of a job's cases are not read into it.
  const view = await writer.details(head, (tests) => tests.slice(0, 1), patient)
  const plain = plainAttributes(view, options.languageName)
  let sep = ''
  yield '{'
  for (const field of options.fields) {
    yield `${sep}${JSON.stringify(field)}:`
    sep = ','
    if (field === 'stdout' || field === 'stderr') {
      const stream = streamOf(view, field)
      yield* jsonText(stream ? writer.text(view, stream) : nothing(), options.base64)
      continue
    }
    const value = plain[field]
    yield JSON.stringify(
      options.base64 && ENCODED.has(field) && typeof value === 'string'
        ? Buffer.from(value, 'utf8').toString('base64')
        : value,
    )
  }
  yield '}'
}

/**
 * `{"submissions":[...]}` of several, null for a token that is not the tenant's (as Judge0
 * has for an unknown one). Each record is read as its turn comes, once the one before has
 * left: a page of 100 big records is never held at once.
 */
export async function* submissionsJson(
  views: AsyncIterable<JobHead | undefined>,
  writer: OutputWriter,
  options: SubmissionJsonOptions,
  meta?: unknown,
): AsyncGenerator<string> {
  yield '{"submissions":['
  let sep = ''
  for await (const view of views) {
    if (sep) yield sep
    sep = ','
    // The answer has begun: each record waits its turn for the budget.
    if (view) yield* submissionJson(view, writer, options, true)
    else yield 'null'
  }
  yield meta === undefined ? ']}' : `],"meta":${JSON.stringify(meta)}}`
}
