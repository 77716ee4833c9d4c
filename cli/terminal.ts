/**
 * What the CLI prints. A job's program is untrusted, and what it writes (its output, its
 * compiler's messages, which quote its source) reaches the terminal of whoever runs the
 * CLI, as does what the server says (reasons, errors, file names). A control sequence in
 * it acts on that terminal: OSC 52 writes the clipboard (and a paste runs it), OSC 0 the
 * window title, OSC 8 makes a link that shows one address and opens another, cursor
 * moves hide or rewrite lines, and some queries make a terminal type its reply as input.
 *
 * So text bound for a terminal keeps only what prints, tab, newline, carriage return
 * (progress lines) and SGR (colours: `ESC [ digits m`); every other C0 and C1 control,
 * DEL and escape sequence is dropped whole. Nothing else of the sequence is ever written,
 * so the terminal never enters one, however a sequence is cut. Into a pipe or a file, or
 * with `--raw`, text goes as it came; JSON escapes every control (`jsonText`).
 */

const UNSAFE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/
/** An SGR longer than this is not colours: dropped. */
const SGR_MAX = 64

enum State {
  Text,
  /** After ESC. */
  Escape,
  /** Within ESC [ ... (or C1 CSI): its parameters so far. */
  Csi,
  /** Within a string (OSC, DCS, SOS, PM, APC): dropped until BEL or ST. */
  Str,
  /** After ESC within a string: `\` ends it. */
  StrEscape,
}

/** One stream's filter: a sequence cut between two writes is still dropped whole. */
export class TerminalFilter {
  private state = State.Text
  private params = ''

  push(text: string): string {
    if (this.state === State.Text && !UNSAFE.test(text)) return text
    let out = ''
    for (const ch of text) {
      const c = ch.codePointAt(0)!
      switch (this.state) {
        case State.Escape:
          if (this.escaped(ch, c)) continue
          break
        case State.Csi:
          if (c >= 0x20 && c <= 0x3f) {
            this.params += ch
            continue
          }
          if (c >= 0x40 && c <= 0x7e) {
            if (ch === 'm' && this.params.length <= SGR_MAX && /^[0-9;:]*$/.test(this.params))
              out += `\x1b[${this.params}m`
            this.state = State.Text
            continue
          }
          // Anything else breaks the sequence off; it is read as text again below.
          this.state = State.Text
          break
        case State.Str:
          if (c === 0x07 || c === 0x9c) this.state = State.Text
          else if (c === 0x1b) this.state = State.StrEscape
          continue
        case State.StrEscape:
          // ESC then anything but `\` ends the string, as terminals read it, and begins a
          // sequence of its own.
          if (ch === '\\') {
            this.state = State.Text
            continue
          }
          if (this.escaped(ch, c)) continue
          break
      }
      if (c === 0x1b) this.state = State.Escape
      else if (c === 0x9b) this.enterCsi()
      else if (c === 0x90 || c === 0x98 || c === 0x9d || c === 0x9e || c === 0x9f) this.state = State.Str
      else if (!UNSAFE.test(ch)) out += ch
    }
    return out
  }

  /**
   * The character after an ESC: false when it ends the sequence and is to be read as
   * text (a control, such as a line end, is kept), true when the sequence took it.
   */
  private escaped(ch: string, c: number): boolean {
    if (ch === '[') this.enterCsi()
    else if (ch === ']' || ch === 'P' || ch === 'X' || ch === '^' || ch === '_') this.state = State.Str
    else if (c === 0x1b || (c >= 0x20 && c <= 0x2f)) this.state = State.Escape
    else {
      this.state = State.Text
      return c >= 0x20
    }
    return true
  }

  private enterCsi(): void {
    this.state = State.Csi
    this.params = ''
  }
}

let raw = false

/** `--raw`: the CLI's terminal gets every byte as it came. */
export function keepControlSequences(): void {
  raw = true
}

function filtered(to: NodeJS.WriteStream): boolean {
  return !raw && to.isTTY === true
}

/** Text the CLI prints whole (a message, a table, a job's stored output): made safe for a terminal. */
export function print(to: NodeJS.WriteStream, text: string): void {
  to.write(filtered(to) ? new TerminalFilter().push(text) : text)
}

/** The CLI's own control sequences (clearing a progress line), written as they are: nothing else goes this way. */
export function rawStderr(text: string): void {
  process.stderr.write(text)
}

/** A writer for one stream of a job's output, which comes in pieces. */
export function streamWriter(to: NodeJS.WriteStream): (text: string) => void {
  if (!filtered(to)) return (text) => void to.write(text)
  const filter = new TerminalFilter()
  return (text) => {
    const safe = filter.push(text)
    if (safe !== '') to.write(safe)
  }
}

/**
 * JSON of a value, with every control escaped: JSON.stringify leaves DEL, C1 controls and
 * the line separators as they are (valid JSON either way).
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
