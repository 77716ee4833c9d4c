import { useEffect, useRef } from 'preact/hooks'
import type { OutputPiece } from '../live-job.js'

/** The job's output as it arrives: stdout and stderr told apart, steps marked; follows the end unless scrolled up. */
export function OutputView({ pieces, placeholder }: { pieces: readonly OutputPiece[]; placeholder: string }) {
  const box = useRef<HTMLPreElement>(null)
  const follow = useRef(true)
  useEffect(() => {
    const el = box.current
    if (el && follow.current) el.scrollTop = el.scrollHeight
  }, [pieces])
  return (
    <pre
      class="output"
      ref={box}
      data-testid="output"
      aria-live="polite"
      onScroll={(e) => {
        const el = e.currentTarget
        follow.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8
      }}
    >
      {pieces.length === 0 ? <span class="muted">{placeholder}</span> : null}
      {pieces.map((p, i) =>
        p.kind === 'text' ? (
          <span key={i} class={`out-${p.stream}`} data-stream={p.stream}>
            {p.text}
          </span>
        ) : (
          <span key={i} class="out-step" data-step={p.step}>
            {`── ${p.step === 'compile' ? 'compile' : p.step === 'run' ? 'run' : `test ${p.index}`} ──\n`}
          </span>
        ),
      )}
    </pre>
  )
}
