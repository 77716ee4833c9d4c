import { cpp } from '@codemirror/lang-cpp'
import { go } from '@codemirror/lang-go'
import { java } from '@codemirror/lang-java'
import { javascript } from '@codemirror/lang-javascript'
import { python } from '@codemirror/lang-python'
import { rust } from '@codemirror/lang-rust'
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands'
import {
  bracketMatching,
  defaultHighlightStyle,
  foldGutter,
  indentOnInput,
  StreamLanguage,
  syntaxHighlighting,
} from '@codemirror/language'
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search'
import { shell } from '@codemirror/legacy-modes/mode/shell'
import { Compartment, EditorState, Prec, type Extension } from '@codemirror/state'
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from '@codemirror/view'
import { useEffect, useRef } from 'preact/hooks'

/** The page's style nonce (the server makes one per response): the CSP admits the editor's style element with it. */
const STYLE_NONCE = document.querySelector('meta[name="airlock-style-nonce"]')?.getAttribute('content') ?? ''

/**
 * CodeMirror's basic setup without its autocompletion: the completion tooltip crashes
 * Chromium 156's renderer here, and a playground's programs are short.
 */
const SETUP: Extension = [
  lineNumbers(),
  highlightActiveLineGutter(),
  highlightSpecialChars(),
  history(),
  foldGutter(),
  drawSelection(),
  indentOnInput(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  bracketMatching(),
  highlightActiveLine(),
  highlightSelectionMatches(),
  keymap.of([...defaultKeymap, ...searchKeymap, ...historyKeymap, indentWithTab]),
]

/** Highlighting by runtime, falling back on the file's extension (a project's other files). */
export function languageFor(runtime: string, path: string): Extension {
  const ext = path.slice(path.lastIndexOf('.') + 1).toLowerCase()
  if (ext === 'py' || (runtime.includes('python') && !path.includes('.'))) return python()
  if (ext === 'js' || ext === 'mjs' || ext === 'ts') return javascript({ typescript: ext === 'ts' })
  if (ext === 'sh') return StreamLanguage.define(shell)
  if (ext === 'c' || ext === 'h' || ext === 'cpp' || ext === 'cc' || ext === 'hpp') return cpp()
  if (ext === 'java') return java()
  if (ext === 'go') return go()
  if (ext === 'rs') return rust()
  return []
}

export interface CodeEditorProps {
  value: string
  runtime: string
  path: string
  label: string
  onChange(value: string): void
  /** Ctrl/Cmd+Enter. */
  onRun?(): void
  readOnly?: boolean
}

/**
 * A CodeMirror editor: highlighting for the runtime, and Ctrl/Cmd+Enter runs instead of
 * adding a line. `value` is where it starts: the editor owns its text from then on (a
 * parent that fed each change back would race fast typing and undo keystrokes), so give
 * it a new `key` to start it again with other text.
 */
export function CodeEditor({ value, runtime, path, label, onChange, onRun, readOnly = false }: CodeEditorProps) {
  const host = useRef<HTMLDivElement>(null)
  const view = useRef<EditorView | null>(null)
  const language = useRef(new Compartment())
  // The editor is made once; these always hold the newest callbacks.
  const latest = useRef({ onChange, onRun })
  latest.current = { onChange, onRun }

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          Prec.highest(
            keymap.of([
              {
                key: 'Mod-Enter',
                run: () => {
                  latest.current.onRun?.()
                  return true
                },
              },
            ]),
          ),
          SETUP,
          EditorView.cspNonce.of(STYLE_NONCE),
          language.current.of(languageFor(runtime, path)),
          EditorState.readOnly.of(readOnly),
          EditorView.contentAttributes.of({ 'aria-label': label }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) latest.current.onChange(u.state.doc.toString())
          }),
        ],
      }),
    })
    view.current = editor
    return () => editor.destroy()
  }, [])

  useEffect(() => {
    view.current?.dispatch({ effects: language.current.reconfigure(languageFor(runtime, path)) })
  }, [runtime, path])

  return <div class="editor" ref={host} data-testid="editor" />
}
