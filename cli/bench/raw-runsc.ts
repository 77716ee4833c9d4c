import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { fileBytes, type JobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { ImageStore } from '../../worker/executors/local/images.js'
import { unmountUnder } from '../../worker/executors/local/mounts.js'

const execFileP = promisify(execFile)

/** What `runsc spec` writes, as far as a raw run changes it. */
interface StarterSpec {
  process: { args: string[]; cwd: string }
  root: { path: string; readonly: boolean }
  mounts: { destination: string; type: string; source: string; options?: string[] }[]
}

/**
 * `runsc spec`'s starter bundle made to run a job's program: the image's root
 * filesystem as its root (read-only), the job's files bound read-only at /workspace, its
 * cwd, and a tmpfs at /tmp. Nothing of Airlock's own sandbox (seccomp, rlimits, cgroup,
 * a writable workspace, a non-root user): the floor the service's start is measured
 * against. Pure.
 */
export function rawBundleSpec<S extends StarterSpec>(starter: S, rootfs: string, workspace: string): S {
  return {
    ...starter,
    root: { path: rootfs, readonly: true },
    mounts: [
      ...starter.mounts,
      { destination: '/workspace', type: 'bind', source: workspace, options: ['rbind', 'ro'] },
      // The root is read-only: programs that write a scratch file get a memory-backed /tmp.
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' },
    ],
  }
}

export interface RawRunscOptions {
  runscPath: string
  /** The platform the service's sandboxes use here. */
  platform: string
  imagesDir: string
  /** A directory of the bench's own: bundles and runsc state go under it. */
  dir: string
}

/**
 * A raw `runsc run` of a job's program, the way one would run it by hand: the bundle
 * prepared first, only `runsc run` timed (spawn to exit). The program is the runtime's
 * command on the job's files in the same image; a compiled runtime (two programs) and a
 * job with test cases are not measured. Ms, or null if the program did not exit 0.
 */
export async function rawRunscRun(spec: JobSpec, options: RawRunscOptions): Promise<number | null> {
  const runtime = findRuntime(spec.runtime)
  if (!runtime || runtime.compile || spec.tests) return null
  await mkdir(options.dir, { recursive: true })
  const dir = await mkdtemp(join(options.dir, 'raw-'))
  try {
    const workspace = join(dir, 'workspace')
    const bundle = join(dir, 'bundle')
    await mkdir(bundle, { recursive: true })
    for (const file of spec.files) {
      const path = join(workspace, file.path)
      await mkdir(dirname(path), { recursive: true })
      await writeFile(path, fileBytes(file))
    }
    await execFileP(options.runscPath, [
      'spec',
      `--bundle=${bundle}`,
      '--cwd=/workspace',
      '--',
      ...runtime.command(spec.entrypoint, spec.args),
    ])
    const configPath = join(bundle, 'config.json')
    const starter = JSON.parse(await readFile(configPath, 'utf8')) as StarterSpec
    const rootfs = new ImageStore(options.imagesDir).rootfs(runtime.localImage)
    await writeFile(configPath, JSON.stringify(rawBundleSpec(starter, rootfs, workspace)))
    const args = [
      `--root=${join(dir, 'state')}`,
      `--platform=${options.platform}`,
      '--network=none',
      'run',
      `--bundle=${bundle}`,
      dir.slice(dir.lastIndexOf('/') + 1),
    ]
    const t0 = performance.now()
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(options.runscPath, args, { stdio: 'ignore', env: {} })
      child.once('error', reject)
      child.once('exit', (status) => resolve(status))
    })
    const ms = performance.now() - t0
    return code === 0 ? ms : null
  } finally {
    // runsc leaves its empty network namespace mounted in its state directory.
    await unmountUnder(dir)
    await rm(dir, { recursive: true, force: true })
  }
}
