import type { JobRequest, Limits, Runtime } from '../../sdk/src/api-types.js'
import type { FieldErrors } from './field-errors.js'
import { sampleFor } from './samples.js'

/** The playground's form as the user left it, and the request it makes. */
export interface DraftFile {
  path: string
  content: string
}

export interface DraftTest {
  stdin: string
  expectedOutput: string
}

export interface Draft {
  runtime: string
  files: DraftFile[]
  active: number
  stdin: string
  /** One argument per line. */
  args: string
  /** KEY=value, one per line. */
  env: string
  limits: Partial<Record<keyof Limits, string>>
  tests: DraftTest[]
}

export const LIMIT_FIELDS: { key: keyof Limits; label: string; compiledOnly?: boolean }[] = [
  { key: 'timeoutMs', label: 'Time (ms)' },
  { key: 'memoryMb', label: 'Memory (MB)' },
  { key: 'cpus', label: 'CPUs' },
  { key: 'pids', label: 'Processes' },
  { key: 'outputBytes', label: 'Output (bytes)' },
  { key: 'compileTimeoutMs', label: 'Compile time (ms)', compiledOnly: true },
]

/** A new draft: the runtime's default entrypoint holding its sample program. */
export function freshDraft(runtime: Runtime): Draft {
  return {
    runtime: runtime.name,
    files: [{ path: runtime.defaultEntrypoint, content: sampleFor(runtime.name) }],
    active: 0,
    stdin: '',
    args: '',
    env: '',
    limits: {},
    tests: [],
  }
}

/** The request a draft makes, or the fields it cannot be sent with. */
export function draftRequest(draft: Draft): { request: JobRequest } | { errors: FieldErrors } {
  const errors: FieldErrors = new Map()
  const env: Record<string, string> = {}
  draft.env.split('\n').forEach((line, i) => {
    if (!line.trim()) return
    const eq = line.indexOf('=')
    if (eq <= 0) errors.set('env', [`line ${i + 1}: write KEY=value`])
    else env[line.slice(0, eq).trim()] = line.slice(eq + 1)
  })
  const limits: Limits = {}
  for (const { key } of LIMIT_FIELDS) {
    const text = draft.limits[key]?.trim()
    if (!text) continue
    const n = Number(text)
    if (!Number.isFinite(n)) errors.set(`limits.${key}`, ['must be a number'])
    else limits[key] = n
  }
  if (errors.size > 0) return { errors }
  const args = draft.args.split('\n').filter((a) => a.length > 0)
  return {
    request: {
      runtime: draft.runtime,
      files: draft.files.map((f) => ({ path: f.path, content: f.content })),
      entrypoint: draft.files[0]?.path,
      ...(draft.stdin ? { stdin: draft.stdin } : {}),
      ...(args.length > 0 ? { args } : {}),
      ...(Object.keys(env).length > 0 ? { env } : {}),
      ...(Object.keys(limits).length > 0 ? { limits } : {}),
      ...(draft.tests.length > 0
        ? {
            tests: draft.tests.map((t) => ({
              stdin: t.stdin,
              ...(t.expectedOutput ? { expectedOutput: t.expectedOutput } : {}),
            })),
          }
        : {}),
    },
  }
}
