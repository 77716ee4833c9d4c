import { LAUNCHER_REPORT } from '../sandbox-process.js'

/** What the launcher reported at the end of one stream (LAUNCHER_REPORT). */
export type ReportLine = { kind: 'end' } | { kind: 'exit'; exitCode: number; at: number }

/** Longer than any begin line: a first line past this is the program's, not a launcher's. */
const BEGIN_LINE_MAX = LAUNCHER_REPORT.begin.length + 1 + 64 + 1

/**
 * How long bytes held back as the possible start of a launcher line wait for the rest
 * before they are passed on as the program's. The launcher writes each of its lines,
 * newline first, in one write, so the rest comes with them or within moments; a
 * program's last newline is not kept from a live reader until its next output.
 */
export const HOLD_BACK_MS = 100

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * One stream of a sandbox container's log, as the capped launcher writes it
 * (sandbox-process.ts, cappedRun): a begin line with the launcher's nonce, then the
 * program's bytes, then the launcher's end and exit lines with that nonce. Passes the
 * program's bytes on exactly, byte for byte, and reports the launcher's lines.
 *
 * The nonce makes the report the launcher's own: it is drawn inside the sandbox and
 * written to the container's log before the program starts, and the program can read
 * neither the log nor the launcher's memory (gVisor's ptrace scope 1 keeps
 * /proc/PPID/mem from a child), so a line it writes with another nonce is only
 * output. A stream whose first line is no begin line (a launcher without the report)
 * is passed on as it is and reports nothing.
 *
 * Bytes that may be the start of a launcher line (from the last newline on) are held
 * back until the next chunk or flush() says whether they are, or HOLD_BACK_MS passes.
 */
export class LauncherReportFilter {
  /** undefined: the first line is not complete yet; null: this stream has no report. */
  private nonce: string | null | undefined
  private pending = ''
  private markers: RegExp | undefined
  private prefixes: string[] = []
  private release: NodeJS.Timeout | undefined

  constructor(
    private readonly passOn: (chunk: Buffer) => void,
    private readonly onReport: (line: ReportLine) => void,
    private readonly holdBackMs = HOLD_BACK_MS,
  ) {}

  write(chunk: Buffer): void {
    clearTimeout(this.release)
    // latin1 maps each byte to one char and back: byte-exact, and the lines are ASCII.
    this.pending += chunk.toString('latin1')
    if (this.nonce === undefined) {
      const nl = this.pending.indexOf('\n')
      if (nl < 0) {
        if (this.pending.length <= BEGIN_LINE_MAX) return
        this.nonce = null
      } else {
        const m = new RegExp(`^${escapeRegExp(LAUNCHER_REPORT.begin)} ([0-9a-f]{16,64})$`).exec(
          this.pending.slice(0, nl),
        )
        this.nonce = m ? m[1]! : null
        if (m) this.start(nl + 1)
      }
    }
    this.drain(false)
  }

  /** The stream ended: what was held back is the program's. */
  flush(): void {
    clearTimeout(this.release)
    if (this.nonce === undefined) this.nonce = null
    this.drain(true)
  }

  private start(from: number): void {
    const n = escapeRegExp(this.nonce!)
    this.pending = this.pending.slice(from)
    // The begin line again (the other stream's, in a merged log) has no newline of ours
    // before it; the end and exit lines have one, written in case the program's last
    // line had none.
    this.markers = new RegExp(
      `(?<begin>${escapeRegExp(LAUNCHER_REPORT.begin)} ${n}\\n)|(?<end>\\n?${escapeRegExp(LAUNCHER_REPORT.end)} ${n}\\n)|\\n?${escapeRegExp(LAUNCHER_REPORT.exit)} ${n} (?<code>\\d{1,3}) (?<at>\\d{1,20})\\n`,
    )
    this.prefixes = [
      `${LAUNCHER_REPORT.begin} ${this.nonce}\n`,
      `${LAUNCHER_REPORT.end} ${this.nonce}\n`,
      `${LAUNCHER_REPORT.exit} ${this.nonce} `,
    ]
  }

  private drain(all: boolean): void {
    if (this.nonce === null || !this.markers) {
      this.emit(this.pending)
      this.pending = ''
      return
    }
    for (let m = this.markers.exec(this.pending); m; m = this.markers.exec(this.pending)) {
      this.emit(this.pending.slice(0, m.index))
      this.pending = this.pending.slice(m.index + m[0].length)
      if (m.groups?.end) this.onReport({ kind: 'end' })
      else if (m.groups?.code)
        this.onReport({ kind: 'exit', exitCode: Number(m.groups.code), at: Number(m.groups.at) / 1e6 })
    }
    const hold = all ? this.pending.length : this.pending.length - this.heldBack()
    this.emit(this.pending.slice(0, hold))
    this.pending = this.pending.slice(hold)
    if (this.pending && !all) {
      this.release = setTimeout(() => this.drain(true), this.holdBackMs)
      this.release.unref()
    }
  }

  /** How many bytes at the end of `pending` may start a launcher line. */
  private heldBack(): number {
    const nl = this.pending.lastIndexOf('\n')
    const tail = nl < 0 ? this.pending : this.pending.slice(nl + 1)
    // An exit line's rest is a status (3 digits) and a time (20): longer is not the launcher's,
    // and held, it would be searched again with every piece that came after it.
    const mayStart = (s: string) =>
      this.prefixes.some(
        (p) => p.startsWith(s) || (p.endsWith(' ') && s.startsWith(p) && /^[0-9 ]{0,25}$/.test(s.slice(p.length))),
      )
    if (!mayStart(tail)) return 0
    // A line start with nothing before it in `pending` is at the start of a line only
    // if what was passed on last ended one; holding it anyway only delays it.
    return nl < 0 ? tail.length : tail.length + 1
  }

  private emit(text: string): void {
    if (text) this.passOn(Buffer.from(text, 'latin1'))
  }
}
