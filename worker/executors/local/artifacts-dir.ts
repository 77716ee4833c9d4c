import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { mkdir, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { MAX_ARTIFACT_ENTRIES, type ArtifactFile } from '../../../core/artifacts.js'
import { filePathProblem } from '../../../core/job-spec.js'
import { SANDBOX_GID, SANDBOX_UID } from '../sandbox-process.js'

const execFileP = promisify(execFile)

/** How deep the walk goes; a deeper file is not read (the entry bound keeps it small anyway). */
const MAX_DEPTH = 16

/**
 * The host side of a sandbox's artifacts directory: a tmpfs of its own, so a job cannot
 * write more than `maxBytes`, or more than MAX_ARTIFACT_ENTRIES files and directories, to
 * the host (it gets ENOSPC), owned by the sandbox user. Unmounted with the bundle
 * (unmountUnder) before it is removed.
 */
export async function mountArtifactsDir(dir: string, maxBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // nosymfollow: the host never follows a link the job made, at any depth of a path.
  const options = [
    `size=${maxBytes}`,
    `nr_inodes=${MAX_ARTIFACT_ENTRIES + 1}`,
    'mode=0700',
    `uid=${SANDBOX_UID}`,
    `gid=${SANDBOX_GID}`,
    'nosuid',
    'nodev',
    'nosymfollow',
  ]
  await execFileP('mount', ['-t', 'tmpfs', '-o', options.join(','), 'airlock-artifacts', dir])
}

export interface Collected {
  files: ArtifactFile[]
  /** Entries not read: links, pipes, devices, names that are not UTF-8, files past the bytes left. */
  skipped: string[]
}

/**
 * Reads back the regular files a finished job left, after its sandbox's processes are
 * gone, `maxBytes` in all. What the job made is hostile: links are never followed (the
 * walk goes by the entries' own types, and every open refuses a link), names that are
 * not UTF-8 are skipped rather than guessed, and a file is read only when its size fits
 * what is left: a sparse file (`truncate -s 1T`) takes no room in the tmpfs but would
 * read as that many zeros.
 */
export async function collectArtifacts(dir: string, maxBytes: number): Promise<Collected> {
  let left = maxBytes
  const files: ArtifactFile[] = []
  const skipped: string[] = []
  const walk = async (rel: string, depth: number): Promise<void> => {
    const entries = await readdir(rel ? join(dir, rel) : dir, { withFileTypes: true, encoding: 'buffer' }).catch(() => {
      skipped.push(rel)
      return []
    })
    for (const entry of entries) {
      const name = entry.name.toString('utf8')
      const path = rel ? `${rel}/${name}` : name
      // A name the job could not have been sent with (control characters, too long) is
      // not taken back either: it would be a key, a header and a file name elsewhere.
      if (!Buffer.from(name, 'utf8').equals(entry.name) || filePathProblem(path))
        skipped.push(`${rel ? `${rel}/` : ''}${entry.name.toString('latin1')}`)
      else if (entry.isDirectory() && depth < MAX_DEPTH) await walk(path, depth + 1)
      else if (entry.isFile()) {
        // One entry that cannot be read (it vanished, it is not what it was) is left; the job's result stands.
        const content = await readNoFollow(join(dir, path), left).catch(() => undefined)
        if (content) {
          left -= content.length
          files.push({ path, content })
        } else skipped.push(path)
      } else skipped.push(path)
    }
  }
  await walk('', 0)
  return { files, skipped }
}

/** The file's bytes, or undefined when it is larger than `maxBytes`. */
async function readNoFollow(path: string, maxBytes: number): Promise<Buffer | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    const { size } = await handle.stat()
    if (size > maxBytes) return undefined
    const content = Buffer.alloc(size)
    const { bytesRead } = await handle.read(content, 0, size, 0)
    return content.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}
