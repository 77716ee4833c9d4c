/**
 * The runtime catalog: which languages a job may ask for, which sandbox image holds
 * each one, and how its entrypoint is started. Versions are not written here: they
 * are read from the built image (see sandbox-images/), so they cannot lie.
 */
export interface RuntimeDefinition {
  readonly name: string
  readonly description: string
  /** Image (root filesystem) under sandbox-images/ that carries the interpreter. */
  readonly image: string
  /** File name given to `source` when a job sends a single source string. */
  readonly defaultEntrypoint: string
  /** argv inside the sandbox, relative to the workspace. */
  command(entrypoint: string, args: readonly string[]): string[]
}

export const RUNTIMES: readonly RuntimeDefinition[] = [
  {
    name: 'python',
    description: 'CPython 3',
    image: 'default',
    defaultEntrypoint: 'main.py',
    command: (entrypoint, args) => ['python3', entrypoint, ...args],
  },
  {
    name: 'node',
    description: 'Node.js',
    image: 'default',
    defaultEntrypoint: 'main.js',
    command: (entrypoint, args) => ['node', entrypoint, ...args],
  },
  {
    name: 'bash',
    description: 'GNU Bash',
    image: 'default',
    defaultEntrypoint: 'main.sh',
    command: (entrypoint, args) => ['bash', entrypoint, ...args],
  },
]

export function findRuntime(name: string): RuntimeDefinition | undefined {
  return RUNTIMES.find((r) => r.name === name)
}
