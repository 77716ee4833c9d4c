import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { placeArtifacts } from '../../cli/artifact-dir.js'

// `airlock run --out DIR` writes what a job left. Between the CLI's "is it empty" and its
// writes, another user of a shared directory could put a symlink into DIR (review 21,
// LOW): written into DIR itself, the job's files went wherever that pointed.

async function scratch(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-artifact-dir-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const bytes = (text: string) => async () => new TextEncoder().encode(text)
const run = (file: string, args: string[]) => promisify(execFile)(file, args)

t.test('artifacts land in a new directory, or in place of an empty one, at their paths', async (t) => {
  const base = await scratch(t)
  await placeArtifacts(join(base, 'new'), ['a.txt', 'deep/b.txt'], (p) => bytes(`of ${p}`)())
  t.equal(await readFile(join(base, 'new/a.txt'), 'utf8'), 'of a.txt')
  t.equal(await readFile(join(base, 'new/deep/b.txt'), 'utf8'), 'of deep/b.txt')
  t.equal((await stat(join(base, 'new'))).mode & 0o777, 0o777 & ~process.umask(), 'the mode a mkdir gives')

  await mkdir(join(base, 'empty'))
  await placeArtifacts(join(base, 'empty'), ['c.txt'], bytes('c'))
  t.equal(await readFile(join(base, 'empty/c.txt'), 'utf8'), 'c')
  t.same(await readdir(base), ['empty', 'new'], 'no staging directory is left beside them')
})

t.test('a symlink put into the directory after the check is never written through', async (t) => {
  const base = await scratch(t)
  const victim = join(base, 'victim')
  await mkdir(victim)
  const out = join(base, 'out')
  await mkdir(out)
  // The "other user" acts while the first artifact is being fetched, ahead of the second.
  const planting = async (p: string) => {
    await symlink(victim, join(out, 'hooks')).catch(() => undefined)
    return new TextEncoder().encode(`of ${p}`)
  }
  await t.rejects(placeArtifacts(out, ['a.txt', 'hooks/pre-commit'], planting), /no longer an empty directory/)
  t.same(await readdir(victim), [], "nothing reached the symlink's target")
  t.ok((await lstat(join(out, 'hooks'))).isSymbolicLink(), 'the planted entry is as it was')
  t.same((await readdir(base)).sort(), ['out', 'victim'], 'the staged files were removed')
})

t.test("a symlink put at the directory's own name is refused, not followed", async (t) => {
  const base = await scratch(t)
  const victim = join(base, 'victim')
  await mkdir(victim)
  const out = join(base, 'out')
  const planting = async () => {
    await symlink(victim, out).catch(() => undefined)
    return new TextEncoder().encode('x')
  }
  await t.rejects(placeArtifacts(out, ['f.txt'], planting), /no longer an empty directory/)
  t.same(await readdir(victim), [], "nothing reached the symlink's target")
  t.same((await readdir(base)).sort(), ['out', 'victim'], 'the staged files were removed')
})

t.test('a path that would leave the directory is refused before anything is written', async (t) => {
  const base = await scratch(t)
  let fetched = 0
  const count = async () => {
    fetched++
    return new Uint8Array()
  }
  await t.rejects(placeArtifacts(join(base, 'out'), ['ok.txt', '../escape'], count), /would leave/)
  t.equal(fetched, 0)
  t.same(await readdir(base), [])
})

t.test('where the rename cannot be made (a mount point), the files are written in place', async (t) => {
  // A container's bind-mounted output directory is the usual case: renaming over a mount
  // point is EBUSY. A tmpfs mounted on the directory stands in for it (this runs as root).
  const base = await scratch(t)
  const out = join(base, 'out')
  await mkdir(out)
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'airlock-test-out', out])
  t.teardown(() => run('umount', [out]))
  await placeArtifacts(out, ['a.txt', 'deep/b.txt'], (p) => bytes(`of ${p}`)())
  t.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'of a.txt')
  t.equal(await readFile(join(out, 'deep/b.txt'), 'utf8'), 'of deep/b.txt')
  t.same((await readdir(base)).sort(), ['out'], 'and nothing is left beside it')
})

t.test(
  'the current directory is written into, not replaced (a shell in it would be left in a removed one)',
  async (t) => {
    const base = await scratch(t)
    const before = process.cwd()
    process.chdir(base)
    t.teardown(() => process.chdir(before))
    const inode = (await stat(base)).ino
    await placeArtifacts('.', ['c.txt'], bytes('c'))
    t.equal((await stat(base)).ino, inode, 'the same directory')
    t.equal(await readFile(join(base, 'c.txt'), 'utf8'), 'c')
  },
)
