/**
 * Snapshot benchmark (prints numbers; not a test): for runtimes that are slow to start,
 * how long a gVisor sandbox takes to be ready from a cold `runsc run`, against a
 * `runsc restore` of a checkpoint taken once the program was ready.
 *
 * Each sandbox is the worker's own bundle (buildOciConfig: read-only root, uid 10001, no
 * capabilities, seccomp, tmpfs workspace, loopback-only network), run by runsc under a
 * state root of this script's own in a temporary directory, all removed at the end.
 * The program prints "ready" once its imports are done, then answers "pong" to each line
 * on stdin: cold = spawn to "ready"; restore = spawn to the first "pong".
 *
 * node dist/bench/snapshot-restore.js [--runs 5] [--runtimes bash,ml-python,node] [--background] [--runsc
 * /usr/local/bin/runsc]
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs, promisify } from 'node:util'
import { findRuntime } from '../core/runtimes.js'
import { unmountUnder } from '../worker/executors/local/mounts.js'
import { buildOciConfig } from '../worker/executors/local/oci-bundle.js'

const execFileP = promisify(execFile)

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    runtimes: { type: 'string', default: 'bash,ml-python,node' },
    runsc: { type: 'string', default: '/usr/local/bin/runsc' },
    images: { type: 'string', default: '/var/lib/airlock/images' },
    /** runsc restore --background: memory pages load after restore returns (lazily). */
    background: { type: 'boolean', default: false },
  },
})
const RUNS = Number(values.runs)
const RUNSC = values.runsc
const READY_TIMEOUT_MS = 60_000

/** What each runtime runs: its slow imports, then a line-for-line echo on stdin. */
const PROGRAMS: Record<string, string> = {
  // What the warm pool boots: a shell that waits on stdin (its launcher), with no slow start of its own.
  bash: 'echo ready\nwhile read -r line; do echo pong; done\n',
  'ml-python': [
    'import sys, numpy, pandas, sklearn, sklearn.linear_model',
    "print('ready', flush=True)",
    'for line in sys.stdin:',
    "    print('pong', flush=True)",
    '',
  ].join('\n'),
  node: [
    "const rl = require('node:readline').createInterface({ input: process.stdin })",
    "rl.on('line', () => process.stdout.write('pong\\n'))",
    "process.stdout.write('ready\\n')",
    '',
  ].join('\n'),
}

interface Result {
  runtime: string
  coldMs: number[]
  checkpointMs: number[]
  imageBytes: number
  restoreMs: number[]
  error?: string
}

/** Sandbox ids still to kill and delete, whatever happens to the run. */
const live = new Set<string>()
let stateRoot = ''

function runscArgs(logFile: string, ...args: string[]): string[] {
  // The worker's flags (runsc.ts); --oci-seccomp so the bundle's profile is enforced.
  return [
    `--root=${stateRoot}`,
    '--platform=systrap',
    '--network=none',
    '--oci-seccomp',
    `--log=${logFile}`,
    '--log-format=text',
    ...args,
  ]
}

async function writeBundle(dir: string, runtimeName: string): Promise<void> {
  const runtime = findRuntime(runtimeName)
  const source = PROGRAMS[runtimeName]
  if (!runtime || source === undefined) throw new Error(`no runtime or program for ${runtimeName}`)
  const files = join(dir, 'files')
  await mkdir(files, { recursive: true })
  await writeFile(join(files, runtime.defaultEntrypoint), source, { mode: 0o644 })
  const limits = { timeoutMs: 600_000, memoryMb: 2048, cpus: 2, pids: 256, outputBytes: 1 << 20 }
  const spec = {
    runtime: runtimeName,
    files: [],
    entrypoint: runtime.defaultEntrypoint,
    args: [],
    stdin: '',
    env: {},
    limits,
  }
  const config = buildOciConfig({
    spec,
    runtime,
    rootfsPath: join(values.images, runtime.localImage, 'rootfs'),
    jobFilesPath: files,
    cgroupsPath: '',
    workspaceMb: 64,
    network: 'none',
  })
  await writeFile(join(dir, 'config.json'), JSON.stringify(restorableConfig(config)))
}

/**
 * The bundle as runsc restore accepts it. Restore compares the checkpoint's spec with the
 * new one field by field (reflect.DeepEqual), and the checkpoint's copy has lost the
 * empty additionalGids (nil after its JSON round trip), so `[]` fails with `"User" does
 * not match across checkpoint restore`. No cgroup: this measures start and restore, not
 * limits, and leaves nothing in the host's hierarchy.
 */
function restorableConfig(config: Record<string, unknown>): Record<string, unknown> {
  const { user } = config.process as { user: Record<string, unknown> }
  delete user.additionalGids
  const linux = config.linux as Record<string, unknown>
  delete linux.cgroupsPath
  delete linux.resources
  return config
}

/**
 * Resolves with the time `marker` first appears on stdout and the lines before it;
 * rejects if the sandbox exits or stalls first.
 */
function waitForLine(child: ChildProcessWithoutNullStreams, marker: string): Promise<{ at: number; before: string[] }> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => finish(new Error(`no "${marker}" within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
    const finish = (error?: Error) => {
      clearTimeout(timer)
      child.stdout.off('data', onOut)
      child.off('exit', onExit)
      if (error) reject(new Error(`${error.message}; stderr: ${err.trim().slice(-500)}`))
      else resolve({ at: performance.now(), before: out.split('\n').slice(0, out.split('\n').indexOf(marker)) })
    }
    const onOut = (chunk: Buffer) => {
      out += chunk.toString()
      if (out.split('\n').includes(marker)) finish()
    }
    const onExit = (code: number | null) => finish(new Error(`exited (${code}) before "${marker}"`))
    child.stdout.on('data', onOut)
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
    child.once('exit', onExit)
  })
}

function spawnRunsc(id: string, logFile: string, args: string[]): ChildProcessWithoutNullStreams {
  live.add(id)
  // env {} as the worker does: nothing of ours reaches the sandbox.
  return spawn(RUNSC, runscArgs(logFile, ...args), { stdio: ['pipe', 'pipe', 'pipe'], env: {} })
}

function exited(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

async function removeSandbox(id: string, logFile: string, child?: ChildProcessWithoutNullStreams): Promise<void> {
  const quiet = { timeout: 30_000, env: {} }
  await execFileP(RUNSC, runscArgs(logFile, 'kill', '--all', id, 'KILL'), quiet).catch(() => undefined)
  await execFileP(RUNSC, runscArgs(logFile, 'delete', '--force', id), quiet).catch(() => undefined)
  if (child) {
    child.stdin.destroy()
    await exited(child)
  }
  live.delete(id)
}

/** A cold start to "ready", then a checkpoint of that sandbox (which stops it) into imageDir. */
async function coldThenCheckpoint(
  work: string,
  id: string,
  imageDir: string,
): Promise<{ coldMs: number; checkpointMs: number }> {
  const logFile = join(work, `${id}.log`)
  const started = performance.now()
  const child = spawnRunsc(id, logFile, ['run', `--bundle=${join(work, 'bundle')}`, id])
  try {
    const coldMs = (await waitForLine(child, 'ready')).at - started
    const before = performance.now()
    await execFileP(RUNSC, runscArgs(logFile, 'checkpoint', `--image-path=${imageDir}`, id), {
      timeout: 120_000,
      env: {},
    })
    return { coldMs, checkpointMs: performance.now() - before }
  } finally {
    await removeSandbox(id, logFile, child)
  }
}

/** A restore from imageDir to the restored program's first answer on stdin. */
async function restoreToReady(work: string, id: string, imageDir: string): Promise<number> {
  const logFile = join(work, `${id}.log`)
  const started = performance.now()
  const lazy = values.background ? ['--background'] : []
  const child = spawnRunsc(id, logFile, [
    'restore',
    ...lazy,
    `--image-path=${imageDir}`,
    `--bundle=${join(work, 'bundle')}`,
    id,
  ])
  try {
    const answered = waitForLine(child, 'pong')
    child.stdin.write('ping\n')
    const { at, before } = await answered
    // A "ready" would mean the program started over: a cold start, not a restore.
    if (before.includes('ready')) throw new Error('the restored sandbox ran its program from the start')
    return at - started
  } finally {
    await removeSandbox(id, logFile, child)
  }
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

async function measure(root: string, runtime: string): Promise<Result> {
  const result: Result = { runtime, coldMs: [], checkpointMs: [], imageBytes: NaN, restoreMs: [] }
  const work = join(root, runtime)
  await writeBundle(join(work, 'bundle'), runtime)
  const image = join(work, 'image')
  try {
    // Sequential throughout: two sandboxes at once on a small machine would time each other.
    for (let i = 0; i < RUNS; i++) {
      const imageDir = i === 0 ? image : join(work, `image-${i}`)
      const { coldMs, checkpointMs } = await coldThenCheckpoint(work, `snap-${runtime}-cold-${i}`, imageDir)
      result.coldMs.push(coldMs)
      result.checkpointMs.push(checkpointMs)
      if (i === 0) result.imageBytes = await dirBytes(image)
      else await rm(imageDir, { recursive: true, force: true })
    }
    for (let i = 0; i < RUNS; i++)
      result.restoreMs.push(await restoreToReady(work, `snap-${runtime}-restore-${i}`, image))
  } catch (err) {
    result.error = (err as Error).message
  }
  return result
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function p50p90(values: number[]): string {
  return values.length === 0 ? '-' : `${percentile(values, 50).toFixed(0)} / ${percentile(values, 90).toFixed(0)}`
}

function printTable(results: Result[]): void {
  const header = ['runtime', 'cold ready p50/p90 ms', 'restore ready p50/p90 ms', 'checkpoint p50 ms', 'image MB']
  const rows = results.map((r) => [
    r.runtime,
    p50p90(r.coldMs),
    p50p90(r.restoreMs),
    r.checkpointMs.length ? percentile(r.checkpointMs, 50).toFixed(0) : '-',
    Number.isNaN(r.imageBytes) ? '-' : (r.imageBytes / 1024 / 1024).toFixed(1),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  '))
  for (const r of results) if (r.error) console.log(`${r.runtime}: ${r.error}`)
  console.log(
    `n=${RUNS} each; platform systrap, network none, oci-seccomp${values.background ? ', restore --background' : ''}; runsc ${RUNSC}`,
  )
}

/** Kills whatever is still alive and removes the state root, images and bundles. */
async function cleanUp(root: string): Promise<void> {
  for (const id of [...live]) await removeSandbox(id, join(root, 'cleanup.log'))
  // runsc --network=none bind-mounts a namespace into its state root (null-netns) and leaves it.
  await unmountUnder(root)
  await rm(root, { recursive: true, force: true })
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'airlock-snapshot-bench-'))
  stateRoot = join(root, 'state')
  // A ^C still deletes the sandboxes: runsc's state would otherwise outlive this process.
  process.once('SIGINT', () => void cleanUp(root).finally(() => process.exit(130)))
  try {
    const results: Result[] = []
    for (const runtime of values.runtimes.split(',')) results.push(await measure(root, runtime))
    printTable(results)
  } finally {
    await cleanUp(root)
  }
}

await main()
