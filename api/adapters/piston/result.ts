import type { Job } from '../../../core/job.js'
import type { JobView } from '../../../core/job-store.js'
import type { CompileResult } from '../../../core/test-cases.js'
import type { OutputWriter } from '../../services/output-writer.js'
import type { PistonRuntime } from './languages.js'
import type { PistonStage } from './schemas.js'

/**
 * A finished job as Piston's execute answer. A stage's status is Piston's (isolate's)
 * two letters: RE exited non-zero, SG killed by a signal (out of memory included, as
 * isolate reports a cgroup OOM kill), TO timed out (signal SIGKILL, as Piston sets it),
 * XX our fault; null when it exited 0. Messages follow isolate's wording.
 */

type StageEnd = Omit<PistonStage, 'stdout' | 'stderr' | 'output'>

const NOT_MEASURED = { cpu_time: null, memory: null } as const

function exited(code: number | null, signal: string | null): Pick<StageEnd, 'code' | 'signal' | 'status' | 'message'> {
  if (signal) return { code: null, signal, status: 'SG', message: `Caught fatal signal ${signal}` }
  if (code !== null && code !== 0)
    return { code, signal: null, status: 'RE', message: `Exited with error status ${code}` }
  return { code: code ?? 0, signal: null, status: null, message: null }
}

const TIMED_OUT = { code: null, signal: 'SIGKILL', status: 'TO', message: 'Time limit exceeded (wall clock)' } as const

/** How the program's run ended, from the job's status. Pure. */
export function runEnd(job: Omit<Job, 'stdout' | 'stderr'>): StageEnd {
  const wall = { ...NOT_MEASURED, wall_time: job.timings.runMs }
  switch (job.status) {
    case 'succeeded':
    case 'failed': {
      const end = exited(job.exitCode, job.signal)
      // Piston would have killed a program past its output cap (OL/EL); Airlock cuts the output and lets it run.
      return { ...wall, ...end, message: end.message ?? (job.truncated ? 'output cut at limits.outputBytes' : null) }
    }
    case 'timeout':
      return { ...wall, ...TIMED_OUT }
    case 'oom':
      return { ...wall, code: null, signal: 'SIGKILL', status: 'SG', message: job.reason ?? 'Memory limit exceeded' }
    default:
      // cancelled, error (and never queued or running: the job has ended).
      return { ...wall, code: null, signal: job.signal, status: 'XX', message: job.reason ?? `job ${job.status}` }
  }
}

/** A compiled runtime's compile stage; from the job's end when the compiler never reported. Pure. */
export function compileStage(job: Omit<Job, 'stdout' | 'stderr'>): PistonStage {
  const compile: CompileResult | null = job.compile
  if (!compile) return { stdout: '', stderr: '', output: '', ...runEnd(job), wall_time: null }
  const end = compile.status === 'timeout' ? TIMED_OUT : exited(compile.exitCode, compile.signal)
  // The compiler's two streams are kept apart, not interleaved: output is one, then the other.
  return {
    stdout: compile.stdout,
    stderr: compile.stderr,
    output: compile.stdout + compile.stderr,
    ...end,
    ...NOT_MEASURED,
    wall_time: compile.timeMs,
  }
}

/** A JSON string's inside, one piece of text at a time. */
async function* jsonText(pieces: AsyncGenerator<string>): AsyncGenerator<string> {
  for await (const piece of pieces) yield JSON.stringify(piece).slice(1, -1)
}

/**
 * The answer's JSON, a piece at a time: the program's output is read under the output
 * budget (outputWriter.text), never held whole, however often a job is read. A compile
 * that did not succeed is the run too, as Piston answers when nothing ran.
 */
export async function* pistonResult(
  view: JobView,
  runtime: PistonRuntime,
  writer: OutputWriter,
): AsyncGenerator<string> {
  yield `{"language":${JSON.stringify(runtime.language)},"version":${JSON.stringify(runtime.version)}`
  if (runtime.definition.compile) {
    const compile = JSON.stringify(compileStage(view.job))
    yield `,"compile":${compile}`
    if (view.job.compile?.status !== 'succeeded') {
      yield `,"run":${compile}}`
      return
    }
  }
  yield ',"run":{"stdout":"'
  yield* jsonText(writer.text(view, 'stdout'))
  yield '","stderr":"'
  yield* jsonText(writer.text(view, 'stderr'))
  yield '","output":"'
  yield* jsonText(writer.text(view, 'both'))
  yield `",${JSON.stringify(runEnd(view.job)).slice(1)}}`
}
