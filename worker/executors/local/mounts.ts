import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

/**
 * Mount points at or below `dir` in a /proc/self/mountinfo text, deepest first (the
 * order they can be unmounted in). Pure. mountinfo escapes space, tab, newline and
 * backslash as octal; those are decoded.
 */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const base = dir.replace(/\/+$/, '')
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === base || p.startsWith(`${base}/`))
  return [...points].sort((a, b) => b.length - a.length)
}

/**
 * Detaches every mount below `dir`, so it can be removed. Current runsc pins an
 * empty network namespace for its gofers by bind-mounting it into its state
 * directory (null-netns), and leaves it there: removing the directory fails with
 * EBUSY, and a bind mount outlives the worker. Concurrent runsc calls may stack
 * several mounts on one path, hence the loop.
 */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 16; round++) {
    const points = mountsUnder(await readFile('/proc/self/mountinfo', 'utf8'), dir)
    if (points.length === 0) return
    for (const point of points) await execFileP('umount', ['-l', point]).catch(() => undefined)
  }
}
