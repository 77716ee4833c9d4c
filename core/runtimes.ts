import { readFileSync } from 'node:fs'

/**
 * The runtime catalog (sandbox-images/catalog.json): which languages a job may ask
 * for, which sandbox image holds each one, and how its entrypoint is started. Exact
 * versions are read from the built images (see sandbox-images/), so they cannot lie;
 * the catalog's `version` is the line each image is built from, checked by a test.
 */
export interface RuntimeDefinition {
  readonly name: string
  readonly description: string
  /** Interpreter line the image is built from, e.g. 3.11. */
  readonly version: string
  /** Image folder under sandbox-images/ (with its Dockerfile); the kubernetes executor's image key. */
  readonly image: string
  /** Root filesystem the local executor runs it in (sandbox-images/build.sh IMAGE). */
  readonly localImage: string
  /** File name given to `source` when a job sends a single source string. */
  readonly defaultEntrypoint: string
  /** argv inside the sandbox, relative to the workspace. */
  command(entrypoint: string, args: readonly string[]): string[]
  /**
   * The compile step's argv, for a compiled runtime: run once before the program (and
   * its test cases), with its own time limit and its output kept apart; absent for an
   * interpreter.
   */
  compile?(entrypoint: string): string[]
}

interface CatalogEntry extends Omit<RuntimeDefinition, 'command' | 'compile'> {
  command: string[]
  compile?: string[]
}

/**
 * A catalog argv with its placeholders filled: {entrypoint} (the file's path),
 * {class} (that path without its extension, / as ., for Java's main class) and
 * {args} (the program's arguments, one word each). Pure.
 */
function fill(template: readonly string[], entrypoint: string, args: readonly string[]): string[] {
  const cls = entrypoint.replace(/\.[^./]*$/, '').replaceAll('/', '.')
  return template.flatMap((part) =>
    part === '{args}' ? [...args] : [part === '{entrypoint}' ? entrypoint : part === '{class}' ? cls : part],
  )
}

/** Catalog JSON -> definitions, refusing anything malformed. Pure. */
export function parseCatalog(text: string): RuntimeDefinition[] {
  const data = JSON.parse(text) as { runtimes?: unknown }
  if (!Array.isArray(data.runtimes) || data.runtimes.length === 0)
    throw new Error('runtime catalog: "runtimes" must be a non-empty array')
  const names = new Set<string>()
  return (data.runtimes as CatalogEntry[]).map((entry, i) => {
    for (const field of ['name', 'description', 'version', 'image', 'localImage', 'defaultEntrypoint'] as const) {
      if (typeof entry[field] !== 'string' || entry[field] === '')
        throw new Error(`runtime catalog: runtimes[${i}].${field} must be a non-empty string`)
    }
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(entry.name) || names.has(entry.name))
      throw new Error(`runtime catalog: bad or duplicate name ${JSON.stringify(entry.name)}`)
    names.add(entry.name)
    const strings = (a: unknown) => Array.isArray(a) && a.length > 0 && a.every((c) => typeof c === 'string')
    // A compiled runtime's command runs what the compile made, so it needs no {entrypoint}.
    if (!strings(entry.command) || (entry.compile === undefined && !entry.command.includes('{entrypoint}'))) {
      throw new Error(
        `runtime catalog: runtimes[${i}].command must be strings including "{entrypoint}" (or "{class}" after a compile)`,
      )
    }
    if (
      entry.compile !== undefined &&
      (!strings(entry.compile) || !entry.compile.includes('{entrypoint}') || entry.compile.includes('{args}'))
    ) {
      throw new Error(
        `runtime catalog: runtimes[${i}].compile must be strings including "{entrypoint}" and not "{args}"`,
      )
    }
    const { command, compile, ...rest } = entry
    return {
      ...rest,
      command: (entrypoint: string, args: readonly string[]) => fill(command, entrypoint, args),
      ...(compile ? { compile: (entrypoint: string) => fill(compile, entrypoint, []) } : {}),
    }
  })
}

/** sandbox-images/catalog.json, found from here whether running from source or from dist/. */
function catalogText(): string {
  for (const up of ['../sandbox-images/catalog.json', '../../sandbox-images/catalog.json']) {
    try {
      return readFileSync(new URL(up, import.meta.url), 'utf8')
    } catch {
      // try the next location
    }
  }
  throw new Error('sandbox-images/catalog.json not found')
}

export const RUNTIMES: readonly RuntimeDefinition[] = parseCatalog(catalogText())

export function findRuntime(name: string): RuntimeDefinition | undefined {
  return RUNTIMES.find((r) => r.name === name)
}
