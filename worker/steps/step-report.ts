import { utf8Boundary } from '../executors/output-capture.js'
import { STEP_KINDS, type StepKind } from '../../core/test-cases.js'
import { FRAME_BYTES, STEP_BEGIN, STEP_FRAME } from './step-driver.js'

/** One step as one stream (stdout or stderr) of the driver reported it. */
export interface StepText {
  kind: StepKind
  /** 0 for the compile; runs and test cases from 1. */
  index: number
  /** What the step wrote to this stream, at most the cap. */
  text: string
  /** Its UTF-8 bytes. */
  bytes: number
  truncated: boolean
  /** The step's end: its exit status (shell-style, 128 + signal) and wall time; stdout's frames carry it. */
  end?: { status: number; elapsedNs: number }
  /** Its end frame was seen (on either stream). */
  ended: boolean
}

const NONCE = /^[0-9a-f]{32}$/
/** A begin line longer than this is not the driver's. */
const MAX_BEGIN_LINE = STEP_BEGIN.length + 64

/**
 * Reads one stream of the step driver (step-driver.ts) as it comes: its steps' text,
 * each cut at its kind's cap (the driver passes one byte more, so a cut shows), and its
 * frames. Text is held back only while it could be the start of a frame. A stream
 * that does not begin with the driver's nonce line is `broken`: nothing in it is
 * taken as a frame. Pure but for the callbacks.
 */
export class StepStreamParser {
  readonly steps: StepText[] = []
  /** The driver said every step ran. */
  done = false
  broken = false
  private began = false
  private buf = ''
  private marker = ''
  private current: StepText | undefined

  constructor(
    private readonly capBytes: (kind: StepKind) => number,
    private readonly on: { text?: (step: StepText, text: string) => void; start?: (step: StepText) => void } = {},
    /** Keep each step's text (false: only hand it on, for a live reader that needs no copy). */
    private readonly keepText = true,
  ) {}

  push(text: string): void {
    if (this.broken) return
    this.buf += text
    if (!this.began && !this.readBegin()) return
    for (;;) {
      const at = this.buf.indexOf(this.marker)
      if (at < 0) {
        const hold = heldBack(this.buf, this.marker)
        this.take(this.buf.slice(0, this.buf.length - hold))
        this.buf = this.buf.slice(this.buf.length - hold)
        return
      }
      this.take(this.buf.slice(0, at))
      const eol = this.buf.indexOf('\n', at + this.marker.length)
      if (eol < 0) {
        this.buf = this.buf.slice(at)
        // The driver writes a frame's line at once, and none is longer: a longer one is not
        // its. Held, it would be searched again with every piece that came after it.
        if (this.buf.length > FRAME_BYTES) this.broken = true
        return
      }
      const frame = this.buf.slice(at + this.marker.length, eol)
      this.buf = this.buf.slice(eol + 1)
      if (!this.frame(frame.split(' '))) {
        this.broken = true
        return
      }
    }
  }

  /** The stream ended: what was held back is the step's text after all. */
  finish(): void {
    if (!this.broken && this.began) this.take(this.buf)
    this.buf = ''
  }

  private readBegin(): boolean {
    const eol = this.buf.indexOf('\n')
    if (eol < 0) {
      if (this.buf.length > MAX_BEGIN_LINE) this.broken = true
      return false
    }
    const [tag, nonce, ...rest] = this.buf.slice(0, eol).split(' ')
    if (tag !== STEP_BEGIN || !NONCE.test(nonce ?? '') || rest.length > 0) {
      this.broken = true
      return false
    }
    this.began = true
    this.marker = `${STEP_FRAME} ${nonce} `
    this.buf = this.buf.slice(eol + 1)
    return true
  }

  private frame(words: string[]): boolean {
    const [what, kind, index, status, ns] = words
    if (what === 'done' && words.length === 1 && !this.current) return (this.done = true)
    const step =
      (STEP_KINDS as readonly string[]).includes(kind ?? '') && /^\d{1,3}$/.test(index ?? '')
        ? { kind: kind as StepKind, index: Number(index) }
        : undefined
    if (!step) return false
    if (what === 'start' && words.length === 3 && !this.current) {
      if (!this.comesNext(step)) return false
      this.current = { ...step, text: '', truncated: false, ended: false, bytes: 0 }
      this.steps.push(this.current)
      this.on.start?.(this.current)
      return true
    }
    if (what !== 'end' || !this.current || this.current.kind !== step.kind || this.current.index !== step.index)
      return false
    if (words.length === 5) {
      if (!/^\d{1,3}$/.test(status ?? '') || !/^-?\d{1,20}$/.test(ns ?? '')) return false
      this.current.end = { status: Number(status), elapsedNs: Math.max(0, Number(ns)) }
    } else if (words.length !== 3) return false
    this.current.ended = true
    this.current = undefined
    return true
  }

  /**
   * Steps come once each, in the driver's order: the compile (0) first, if any, then
   * runs or cases from 1 up. A frame out of that order is not the driver's.
   */
  private comesNext(step: { kind: StepKind; index: number }): boolean {
    const last = this.steps[this.steps.length - 1]
    if (step.kind === 'compile') return !last && step.index === 0
    if (!last || last.kind === 'compile') return step.index === 1
    return last.kind === step.kind && step.index === last.index + 1
  }

  private take(text: string): void {
    const step = this.current
    // Only a step's text is the job's; the driver writes nothing between its frames.
    if (!step || text === '' || step.truncated) return
    const room = this.capBytes(step.kind) - step.bytes
    const bytes = Buffer.byteLength(text)
    let kept = text
    if (bytes > room) {
      const buf = Buffer.from(text).subarray(0, room)
      kept = buf.subarray(0, utf8Boundary(buf)).toString('utf8')
      step.truncated = true
    }
    if (kept === '') return
    if (this.keepText) step.text += kept
    step.bytes += Buffer.byteLength(kept)
    this.on.text?.(step, kept)
  }
}

/** Length of the longest end of `text` that `marker` begins with: it may be a frame still arriving. */
function heldBack(text: string, marker: string): number {
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--) {
    if (marker.startsWith(text.slice(text.length - k))) return k
  }
  return 0
}

/** A whole stream at once. */
export function parseStepStream(text: string, capBytes: (kind: StepKind) => number): StepStreamParser {
  const parser = new StepStreamParser(capBytes)
  parser.push(text)
  parser.finish()
  return parser
}
