import { lstat, readdir, readFile } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import ignore, { type Ignore } from 'ignore'
import { MAX_FILES, MAX_TOTAL_FILE_BYTES, type JobFile } from '../../core/job-spec.js'
import { UsageError } from '../settings.js'

/**
 * What a project's directory leaves out unless its .airlockignore says otherwise
 * (`!name`): version control, dependencies and caches, and the usual places of secrets,
 * which would otherwise be sent to the server and stored with the job.
 */
export const DEFAULT_IGNORES = [
  '.git/',
  '.hg/',
  '.svn/',
  'node_modules/',
  '__pycache__/',
  '*.pyc',
  '.venv/',
  'venv/',
  '.DS_Store',
  '.airlockignore',
  '.env',
  '.env.*',
  '*.pem',
  '*.key',
  '.npmrc',
  '.pypirc',
  '.netrc',
  '.aws/',
  '.ssh/',
]
export const IGNORE_FILE = '.airlockignore'

export interface Project {
  files: JobFile[]
  /** The file the runtime starts, relative to the project's root. */
  entrypoint: string
}

/** Bytes as a job file: text when they are UTF-8, base64 otherwise, so nothing is changed on the way. */
export function toJobFile(path: string, bytes: Buffer): JobFile {
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes)
    ? { path, content: text }
    : { path, content: bytes.toString('base64'), encoding: 'base64' }
}

/**
 * The files of a project: `target` is its entry file (its directory is the project's
 * root) or its directory (every file in it but those ignored); `extra` are more files or
 * directories under the root. Refuses, before anything is sent, what the server would:
 * too many files or too many bytes, with the biggest named and .airlockignore suggested.
 */
export async function collectProject(
  target: string,
  extra: readonly string[],
  options: {
    /** The program's file, relative to the root; by default the target file, or for a directory one of `candidates`. */
    entrypoint?: string
    /** Default entrypoints (main.py, ...) to look for at a directory's top. */
    candidates?: readonly string[]
  },
): Promise<Project> {
  const info = await lstat(target).catch((err: Error) => {
    throw new UsageError(`cannot read ${target}: ${err.message}`)
  })
  const isDir = info.isDirectory()
  const root = resolve(isDir ? target : dirname(target))
  const rules = ignore().add(DEFAULT_IGNORES)
  const ignoreText = await readFile(join(root, IGNORE_FILE), 'utf8').catch(() => '')
  rules.add(ignoreText)
  const found = new Map<string, Buffer>()
  const add = async (path: string, explicit: boolean) => {
    const abs = resolve(path)
    const rel = relative(root, abs).split(sep).join('/')
    if (rel.startsWith('..') || rel === '')
      throw new UsageError(`${path} is not inside the project's directory ${root}`)
    const st = await lstat(abs).catch((err: Error) => {
      throw new UsageError(`cannot read ${path}: ${err.message}`)
    })
    if (st.isDirectory()) return walk(abs, rules)
    if (!st.isFile()) {
      if (explicit) throw new UsageError(`${path} is not a regular file`)
      return
    }
    found.set(rel, await readFile(abs))
  }
  const walk = async (dir: string, rules: Ignore) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const abs = join(dir, entry.name)
      const rel = relative(root, abs).split(sep).join('/')
      // Links are not followed: a project is what is in its directory.
      if (rules.ignores(entry.isDirectory() ? `${rel}/` : rel) || entry.isSymbolicLink()) continue
      if (entry.isDirectory()) await walk(abs, rules)
      else if (entry.isFile()) found.set(rel, await readFile(abs))
    }
  }
  if (isDir) await walk(root, rules)
  else await add(target, true)
  for (const path of extra) await add(path, true)

  const present = (options.candidates ?? []).filter((c) => found.has(c))
  const chosen = options.entrypoint ?? (isDir ? (present.length === 1 ? present[0] : undefined) : basename(target))
  if (!chosen)
    throw new UsageError(
      `which file of ${target} is the program${present.length > 1 ? ` (${present.join(' or ')})` : ''}? pass --entrypoint, e.g. --entrypoint main.py`,
    )
  if (!found.has(chosen)) throw new UsageError(`the entrypoint ${chosen} is not among the project's files`)
  guardSize(found, root)
  return { files: [...found].map(([path, bytes]) => toJobFile(path, bytes)), entrypoint: chosen }
}

/** Refuses a project the server would refuse, saying what is big and how to leave it out. */
function guardSize(found: Map<string, Buffer>, root: string): void {
  const total = [...found.values()].reduce((n, b) => n + b.length, 0)
  if (found.size <= MAX_FILES && total <= MAX_TOTAL_FILE_BYTES) return
  const biggest = [...found]
    .sort((a, b) => b[1].length - a[1].length)
    .slice(0, 5)
    .map(([p, b]) => `${p} (${b.length} bytes)`)
  throw new UsageError(
    `the project is too big to send: ${found.size} files and ${total} bytes (at most ${MAX_FILES} files and ${MAX_TOTAL_FILE_BYTES} bytes). ` +
      `The biggest: ${biggest.join(', ')}. Leave files out with ${join(root, IGNORE_FILE)} (gitignore patterns).`,
  )
}
