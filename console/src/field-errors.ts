import type { ErrorDetail } from '../../sdk/src/api-types.js'

/**
 * Where an API error belongs on the playground's form: each detail's JSON pointer
 * (`/limits/timeoutMs`, `/files/1/path`, `/tests/0/stdin`) is mapped to the field that
 * shows it; what names no field is shown with the form as a whole (key '').
 */
export type FieldErrors = Map<string, string[]>

const FIELDS = ['runtime', 'stdin', 'args', 'env', 'entrypoint', 'isolation'] as const

export function fieldOf(pointer: string): string {
  const parts = pointer.split('/').filter(Boolean)
  const [top, second] = parts
  if (!top) return ''
  if (top === 'limits') return second ? `limits.${second}` : 'limits'
  if (top === 'files' || top === 'source')
    return second !== undefined && /^\d+$/.test(second) ? `files.${second}` : 'files'
  if (top === 'tests') return second !== undefined && /^\d+$/.test(second) ? `tests.${second}` : 'tests'
  return (FIELDS as readonly string[]).includes(top) ? top : ''
}

/** A message that names no pointer can still name a limit ("limits.timeoutMs may be at most ..."). */
function fieldFromMessage(message: string): string {
  const m = /\blimits\.(\w+)/.exec(message)
  return m ? `limits.${m[1]}` : ''
}

export function fieldErrors(message: string, details: readonly ErrorDetail[] | undefined): FieldErrors {
  const out: FieldErrors = new Map()
  const add = (field: string, text: string) => out.set(field, [...(out.get(field) ?? []), text])
  if (details && details.length > 0)
    for (const d of details) add(fieldOf(d.path) || fieldFromMessage(d.message), d.message)
  else add(fieldFromMessage(message), message)
  return out
}
