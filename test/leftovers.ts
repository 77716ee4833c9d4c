/**
 * What the suite may leave on the machine: nothing. tap runs this once after every test
 * file has ended (`after` in .taprc). It removes the two shared parents no single test
 * owns (the `airlock-test` cgroup and /run/airlock-test, once empty), then lists
 * anything of Airlock's tests still there, and fails the run if there is any: cgroups,
 * state directories (runsc state, bundles), mounts, sandbox and cluster processes,
 * temporary directories, network links. The developer's own service (/run/airlock, the
 * `airlock` cgroup) is not the suite's and is not looked at; a second suite running at
 * the same time, or a test cluster kept up on purpose, is reported: one suite a machine.
 */
import { execFile } from 'node:child_process'
import { readdir, readFile, rmdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cgroupVersion, subdirectories } from '../worker/executors/local/cgroups.js'

export interface Roots {
  /** Where the cgroup hierarchies are mounted. */
  cgroup: string
  /** Where state directories go. */
  run: string
  /** Where tests make their temporary directories. */
  tmp: string
  /** /proc, for processes and mounts. */
  proc: string
  /** /sys/class/net, for network links. */
  net: string
}

export const HOST_ROOTS: Roots = {
  cgroup: '/sys/fs/cgroup',
  run: '/run',
  tmp: tmpdir(),
  proc: '/proc',
  net: '/sys/class/net',
}

/** The parents tests, benches and the test cluster make, at the top of a hierarchy or of /run. */
const STATE_NAME = /^airlock-(test|bench-|readers-|soak-|kube-node)/
/** mkdtemp prefixes of tests (airlock-launcher-, airlock-cluster-, airlock-kube-, ...). */
const TMP_NAME = /^airlock-/
/** The test cluster's bridge and node interface. */
const LINK_NAME = /^airlock-/
/** The shared parents, removed here once every test is done with them. */
const SHARED = 'airlock-test'

async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[])
}

/** Each mounted hierarchy: the v2 root itself, or every v1 controller's mount (not the symlinks to them). */
async function hierarchies(root: string): Promise<string[]> {
  if ((await cgroupVersion(root)) === 'v2') return [root]
  return (await subdirectories(root)).map((d) => join(root, d))
}

/** Removes the shared parents when they are empty; a leak below them keeps them, and is reported. */
export async function removeSharedParents(roots: Roots = HOST_ROOTS): Promise<void> {
  for (const h of await hierarchies(roots.cgroup)) await rmdir(join(h, SHARED)).catch(() => undefined)
  await rmdir(join(roots.run, SHARED)).catch(() => undefined)
}

/** Cgroups below `dir`, depth first, as paths from the hierarchy's root. */
async function cgroupTree(h: string, rel: string): Promise<string[]> {
  const below = await subdirectories(join(h, rel))
  const nested = await Promise.all(below.map((d) => cgroupTree(h, join(rel, d))))
  return [rel, ...nested.flat()]
}

/** Files of the work tree that `git status` shows changed or new. */
async function dirtyTree(): Promise<string[]> {
  const status = await new Promise<string>((resolve) =>
    execFile('git', ['status', '--porcelain'], (err, stdout) => resolve(err ? '' : stdout)),
  )
  return status
    .split('\n')
    .filter(Boolean)
    .map((l) => `work tree file ${l.trim()}`)
}

export async function findLeftovers(roots: Roots = HOST_ROOTS): Promise<string[]> {
  const found: string[] = []
  for (const h of await hierarchies(roots.cgroup)) {
    for (const top of (await subdirectories(h)).filter((d) => STATE_NAME.test(d))) {
      for (const c of await cgroupTree(h, top)) found.push(`cgroup ${join(h, c)}`)
    }
  }
  const stateDirs = (await entries(roots.run)).filter((d) => STATE_NAME.test(d)).map((d) => join(roots.run, d))
  for (const d of stateDirs) {
    const held = await entries(d)
    found.push(`state directory ${d}${held.length ? ` (holding ${held.slice(0, 5).join(', ')})` : ''}`)
  }
  for (const d of (await entries(roots.tmp)).filter((d) => TMP_NAME.test(d)))
    found.push(`temporary directory ${join(roots.tmp, d)}`)
  // Mounts and processes under any state or temporary directory of the suite's, named
  // by their path: runsc's null-netns pins, sandboxes, gofers, a cluster's daemons.
  const places = [join(roots.run, 'airlock-'), join(roots.tmp, 'airlock-')]
  const mountinfo = await readFile(join(roots.proc, 'self/mountinfo'), 'utf8').catch(() => '')
  for (const line of mountinfo.split('\n')) {
    const point = line.split(' ')[4]
    if (point && places.some((p) => point.startsWith(p))) found.push(`mount ${point}`)
  }
  for (const pid of (await entries(roots.proc)).filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    const cmdline = (await readFile(join(roots.proc, pid, 'cmdline'), 'utf8').catch(() => ''))
      .replaceAll('\0', ' ')
      .trim()
    if (places.some((p) => cmdline.includes(p))) found.push(`process ${pid}: ${cmdline.slice(0, 160)}`)
  }
  for (const link of (await entries(roots.net)).filter((l) => LINK_NAME.test(l))) found.push(`network link ${link}`)
  return found
}

if (process.argv.some((a) => a.endsWith('/test/leftovers.ts'))) {
  // A sandbox's last processes may still be on their way out when the last file ends:
  // what is really left is still there after a while.
  let left: string[] = []
  for (let tries = 0; tries < 15; tries++) {
    await removeSharedParents()
    left = await findLeftovers()
    if (left.length === 0) break
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
  // CI runs on a clean clone: setup and the suite must not have written into the tree
  // (a lock file npm rewrote, a generated file not ignored).
  if (process.env.CI === 'true') left.push(...(await dirtyTree()))
  if (left.length > 0) {
    process.stderr.write(
      `The suite left ${left.length} thing(s) of Airlock's on this machine; each test must remove what it made:\n${left.map((l) => `  ${l}`).join('\n')}\n`,
    )
    process.exit(1)
  }
  process.stdout.write(
    'leftovers: nothing of the suite is left (cgroups, state directories, mounts, processes, temporary directories, network links)\n',
  )
}
