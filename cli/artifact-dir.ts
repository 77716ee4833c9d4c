import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { UsageError } from './settings.js'

/**
 * --out's directory must be new or empty: a job's files never overwrite the user's (a
 * job that leaves `.git/hooks/pre-commit` must not reach a repository's). Asked before
 * the job is submitted, so a mistake costs no run; `placeArtifacts` holds to it at the end.
 */
export async function mustBeEmpty(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw new UsageError(`cannot use ${dir} for --out: ${err.message}`)
  })
  if (entries.length > 0)
    throw new UsageError(
      `--out ${dir} is not empty; give a new or empty directory, so the job's files overwrite nothing`,
    )
}

/** The local path of an artifact under `root`; a path is the server's word about what a sandbox wrote. */
export function artifactTarget(root: string, path: string): string {
  const target = resolve(root, path)
  // eslint-disable-next-line no-control-regex
  if (!target.startsWith(`${root}${sep}`) || /[\x00-\x1f\x7f]/.test(path))
    throw new Error(`artifact path ${JSON.stringify(path)} would leave ${root}`)
  return target
}

/**
 * Writes a job's artifacts into `dir`. The files go into a new private directory beside it
 * (mkdtemp: 0700, a name no one could guess), which then takes `dir`'s place in one
 * rename. Written into `dir` itself, they followed whatever another local user put there
 * after `mustBeEmpty` looked (a symlink in a shared /tmp directory, to a directory of the
 * user's); a rename replaces only an empty directory (ENOTEMPTY otherwise) and never
 * follows a symlink at `dir`'s name. That holds where others cannot replace entries they
 * do not own in `dir`'s parent (sticky, as /tmp is, or not theirs to write). Where the
 * rename cannot be made (a mount point, another file system), where nothing can be made
 * beside `dir`, and for the current directory (a shell in it would be left in a removed
 * one), the files are written into `dir` as they come.
 */
export async function placeArtifacts(
  dir: string,
  paths: readonly string[],
  fetch: (path: string) => Promise<Uint8Array>,
): Promise<void> {
  const root = resolve(dir)
  if (paths.length === 0) return
  for (const path of paths) artifactTarget(root, path)
  const stage =
    root === process.cwd()
      ? undefined
      : await mkdtemp(join(dirname(root), `.${basename(root)}.airlock-`)).catch(() => undefined)
  if (stage === undefined) return writeInto(root, paths, fetch)
  try {
    await writeInto(stage, paths, fetch)
    // What a plain mkdir would have made (mkdtemp's 0700 was for while it filled).
    await chmod(stage, 0o777 & ~process.umask())
  } catch (err) {
    await rm(stage, { recursive: true, force: true })
    throw err
  }
  try {
    await rename(stage, root)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
      await rm(stage, { recursive: true, force: true })
      throw new UsageError(`--out ${dir} is no longer an empty directory; the job's files were not written`)
    }
    // Kept where they are if they cannot be copied in either: the job has run.
    await writeInto(root, paths, (path) => readFile(artifactTarget(stage, path))).catch((copy: Error) => {
      throw new Error(`the job's files could not be put into ${dir} (${copy.message}); they are in ${stage}`)
    })
    await rm(stage, { recursive: true, force: true })
  }
}

/** Each artifact at its path under `root`; `wx`: nothing there is overwritten or followed at the file's own name. */
async function writeInto(
  root: string,
  paths: readonly string[],
  fetch: (path: string) => Promise<Uint8Array>,
): Promise<void> {
  for (const path of paths) {
    const target = artifactTarget(root, path)
    await mkdir(dirname(target), { recursive: true })
    await writeFile(target, await fetch(path), { flag: 'wx' })
  }
}
