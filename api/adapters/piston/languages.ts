import semver from 'semver'
import { RUNTIMES, type RuntimeDefinition } from '../../../core/runtimes.js'
import { reportedVersion, type WorkerHeartbeat } from '../../../core/worker-registry.js'

/**
 * Piston's names for our runtimes, so code written against Piston asks for the same
 * language and alias (engineer-man/piston's packages: `javascript` run by node, `c++`
 * by gcc). Our own runtime name is an alias too. A catalog runtime missing here is
 * listed under its own name.
 */
const PISTON_NAMES: Readonly<Record<string, { language: string; aliases: readonly string[] }>> = {
  python: { language: 'python', aliases: ['py', 'py3', 'python3'] },
  node: { language: 'javascript', aliases: ['js', 'node-js', 'node-javascript', 'node'] },
  bash: { language: 'bash', aliases: ['sh'] },
  c: { language: 'c', aliases: ['gcc'] },
  cpp: { language: 'c++', aliases: ['cpp', 'g++'] },
  java: { language: 'java', aliases: [] },
  go: { language: 'go', aliases: ['golang'] },
  rust: { language: 'rust', aliases: ['rs'] },
}

/** One of our runtimes as Piston names it, at the version it runs now. */
export interface PistonRuntime {
  language: string
  version: string
  aliases: string[]
  /** Our runtime's name (`/v1`'s), given as Piston's `runtime` where it differs from the language. */
  runtime: string
  definition: RuntimeDefinition
}

/**
 * Every runtime of the catalog in Piston's terms. Its version is the exact one a live
 * worker found in its image (as `GET /v1/runtimes` reports), or the catalog's line
 * (e.g. 3.11) while no worker reports one. Pure.
 */
export function pistonRuntimes(workers: readonly WorkerHeartbeat[]): PistonRuntime[] {
  return RUNTIMES.map((definition) => {
    const names = PISTON_NAMES[definition.name] ?? { language: definition.name, aliases: [] }
    const version = reportedVersion(workers, definition.name) ?? definition.version
    return { language: names.language, version, aliases: [...names.aliases], runtime: definition.name, definition }
  })
}

/**
 * The runtime a request's `language` (a name or an alias) and `version` (a SemVer range,
 * `*`, or the exact version listed) select, as Piston's
 * get_latest_runtime_matching_language_version does; undefined when none. Pure.
 */
export function findPistonRuntime(
  runtimes: readonly PistonRuntime[],
  language: string,
  version: string,
): PistonRuntime | undefined {
  return runtimes.find(
    (r) => (r.language === language || r.aliases.includes(language)) && versionMatches(r.version, version),
  )
}

function versionMatches(listed: string, selector: string): boolean {
  if (selector === listed) return true
  // A catalog line such as 3.11 is read as 3.11.0; an exact version as itself.
  const version = semver.valid(listed) ?? semver.coerce(listed)?.version
  return version !== undefined && semver.validRange(selector) !== null && semver.satisfies(version, selector)
}
