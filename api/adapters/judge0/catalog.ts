import { findRuntime, type RuntimeDefinition } from '../../../core/runtimes.js'
import { reportedVersion, type WorkerRegistry } from '../../../core/worker-registry.js'

/**
 * What the adapter tells a Judge0 client about itself: the API version it speaks, its
 * statuses and its languages. Judge0 CE 1.13.1's own tables, so that clients which hard-code
 * them (the official judge0 Python SDK maps LanguageAlias.CPP to 52 by the version /about
 * reports) keep working.
 */

/** The Judge0 CE API version this adapter speaks; the official SDK picks its language ids by it. */
export const JUDGE0_VERSION = '1.13.1'

/** Judge0's statuses, ids and descriptions as Judge0 CE has them (app/enumerations/status.rb). */
export const STATUSES = {
  queue: { id: 1, description: 'In Queue' },
  process: { id: 2, description: 'Processing' },
  accepted: { id: 3, description: 'Accepted' },
  wrongAnswer: { id: 4, description: 'Wrong Answer' },
  timeLimit: { id: 5, description: 'Time Limit Exceeded' },
  compilationError: { id: 6, description: 'Compilation Error' },
  sigsegv: { id: 7, description: 'Runtime Error (SIGSEGV)' },
  sigxfsz: { id: 8, description: 'Runtime Error (SIGXFSZ)' },
  sigfpe: { id: 9, description: 'Runtime Error (SIGFPE)' },
  sigabrt: { id: 10, description: 'Runtime Error (SIGABRT)' },
  nzec: { id: 11, description: 'Runtime Error (NZEC)' },
  other: { id: 12, description: 'Runtime Error (Other)' },
  internal: { id: 13, description: 'Internal Error' },
  execFormat: { id: 14, description: 'Exec Format Error' },
} as const

export type Judge0Status = (typeof STATUSES)[keyof typeof STATUSES]

interface LanguageEntry {
  /** Judge0 CE 1.13.1's ids for this language; the first is the one a job reads back as. */
  ids: readonly number[]
  runtime: string
  /** How Judge0 names it, before the version: "C (GCC 9.2.0)" -> "C (GCC ", ")". */
  label: (version: string) => string
}

/**
 * Judge0 CE 1.13.1 language ids -> our runtimes. Judge0 has a few ids per language (one per
 * compiler version it shipped); each runs our one version here, and is named by it. Judge0's
 * other languages (and our ml-python, which Judge0 CE has no id for) are not offered.
 */
const ENTRIES: readonly LanguageEntry[] = [
  { ids: [46], runtime: 'bash', label: (v) => `Bash (${v})` },
  { ids: [50, 48, 49], runtime: 'c', label: (v) => `C (GCC ${v})` },
  { ids: [54, 52, 53], runtime: 'cpp', label: (v) => `C++ (GCC ${v})` },
  { ids: [60], runtime: 'go', label: (v) => `Go (${v})` },
  { ids: [62], runtime: 'java', label: (v) => `Java (OpenJDK ${v})` },
  { ids: [63], runtime: 'node', label: (v) => `JavaScript (Node.js ${v})` },
  { ids: [71], runtime: 'python', label: (v) => `Python (${v})` },
  { ids: [73], runtime: 'rust', label: (v) => `Rust (${v})` },
]

export interface Judge0Language {
  id: number
  runtime: RuntimeDefinition
  label: (version: string) => string
}

/** Every language id offered, in id order, each with its runtime. */
export const LANGUAGES: readonly Judge0Language[] = ENTRIES.flatMap((e) => {
  const runtime = findRuntime(e.runtime)
  if (!runtime) throw new Error(`judge0 adapter: runtime ${e.runtime} is not in the catalog`)
  return e.ids.map((id) => ({ id, runtime, label: e.label }))
}).sort((a, b) => a.id - b.id)

export function findLanguage(id: number): Judge0Language | undefined {
  return LANGUAGES.find((l) => l.id === id)
}

/** The id a job of `runtime` reads back as (its language's first id). */
export function languageIdOf(runtime: string): number | null {
  return ENTRIES.find((e) => e.runtime === runtime)?.ids[0] ?? null
}

/**
 * Each runtime's version as the live workers report it (what GET /v1/runtimes says), else
 * the catalog's version line, so a name never claims a version no image has.
 */
export async function runtimeVersions(registry: WorkerRegistry): Promise<(runtime: RuntimeDefinition) => string> {
  const workers = await registry.live()
  return (r) => reportedVersion(workers, r.name) ?? r.version
}

/** A language as GET /languages/:id shows it (Judge0's fields; the commands are ours). */
export function languageDetail(language: Judge0Language, version: string) {
  const { runtime } = language
  const entry = runtime.defaultEntrypoint
  return {
    id: language.id,
    name: language.label(version),
    is_archived: false,
    source_file: entry,
    compile_cmd: runtime.compile ? runtime.compile(entry).join(' ') : null,
    run_cmd: runtime.command(entry, []).join(' '),
  }
}
