import { useEffect, useState } from 'preact/hooks'
import type { Airlock } from '../../sdk/src/client.js'
import type { Job, JobStatus, StepKind } from '../../sdk/src/api-types.js'
import { AirlockError } from '../../sdk/src/errors.js'

/** A piece of the output view: text from one stream, or the start of a step. */
export type OutputPiece =
  | { kind: 'text'; stream: 'stdout' | 'stderr'; text: string }
  | { kind: 'step'; step: StepKind; index: number }

export interface LiveJob {
  status: JobStatus | null
  pieces: OutputPiece[]
  /** The ended job (from the stream's end event). */
  job: Job | null
  error: AirlockError | null
}

/** Characters of output kept on the page; the rest is in the job's logs. */
export const OUTPUT_VIEW_CHARS = 1_000_000

export function appendText(pieces: OutputPiece[], stream: 'stdout' | 'stderr', text: string): OutputPiece[] {
  const last = pieces.at(-1)
  // Neighbouring text of one stream is one piece, so a chatty program makes few nodes.
  if (last?.kind === 'text' && last.stream === stream)
    return [...pieces.slice(0, -1), { ...last, text: last.text + text }]
  return [...pieces, { kind: 'text', stream, text }]
}

/**
 * Follows a job's events over the API's WebSocket stream (single-use stream tokens, the
 * SDK's reconnects) until it ends; output arrives as the program writes it.
 */
export function useLiveJob(client: Airlock | null, id: string | null): LiveJob {
  const [state, setState] = useState<LiveJob>({ status: null, pieces: [], job: null, error: null })
  useEffect(() => {
    setState({ status: id ? 'queued' : null, pieces: [], job: null, error: null })
    if (!client || !id) return
    const abort = new AbortController()
    let shown = 0
    ;(async () => {
      try {
        for await (const event of client.jobs.stream(id, { signal: abort.signal })) {
          if (event.type === 'log') {
            if (shown >= OUTPUT_VIEW_CHARS) continue
            const text = event.data.slice(0, OUTPUT_VIEW_CHARS - shown)
            shown += text.length
            setState((s) => ({ ...s, pieces: appendText(s.pieces, event.stream, text) }))
          } else if (event.type === 'status') setState((s) => ({ ...s, status: event.status }))
          else if (event.type === 'step')
            setState((s) => ({ ...s, pieces: [...s.pieces, { kind: 'step', step: event.step, index: event.index }] }))
          else if (event.type === 'end') setState((s) => ({ ...s, status: event.job.status, job: event.job }))
        }
      } catch (err) {
        if (abort.signal.aborted) return
        // The stream could not be kept up: the result is still there to read.
        try {
          const job = await client.jobs.wait(id, { signal: abort.signal })
          setState((s) => ({ ...s, status: job.status, job, pieces: s.pieces.length > 0 ? s.pieces : fromJob(job) }))
        } catch (inner) {
          if (!abort.signal.aborted) setState((s) => ({ ...s, error: toAirlockError(inner ?? err) }))
        }
      }
    })()
    return () => abort.abort()
  }, [client, id])
  return state
}

function fromJob(job: Job): OutputPiece[] {
  const out: OutputPiece[] = []
  if (job.stdout) out.push({ kind: 'text', stream: 'stdout', text: job.stdout })
  if (job.stderr) out.push({ kind: 'text', stream: 'stderr', text: job.stderr })
  return out
}

export function toAirlockError(err: unknown): AirlockError {
  return err instanceof AirlockError
    ? err
    : new AirlockError((err as Error)?.message ?? String(err), 'AIRLOCK_CONSOLE_ERROR')
}
