import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Airlock } from '../../sdk/src/index.js'
import { EXIT } from '../exit-codes.js'
import { UsageError } from '../settings.js'
import { directRunner } from './direct.js'
import { renderHtml, renderTable } from './report.js'
import { runBench } from './run-bench.js'
import {
  compareSandboxes,
  renderSandboxTable,
  SANDBOX_CONFIG_NAMES,
  type SandboxConfigName,
} from './sandbox-compare.js'
import { BUILTIN_WORKLOADS, loadWorkloadFile, type Workload } from './workloads.js'
import { jsonText, print, rawStderr, TerminalFilter } from '../terminal.js'

export interface BenchFlags {
  quick?: boolean
  jobs?: string
  concurrency?: string
  workload?: string[]
  only?: string
  out?: string
  direct?: boolean
  ingestSeconds?: string
  json?: boolean
  sandboxes?: string
}

function int(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} takes a whole number from ${min} to ${max}`)
  return n
}

async function selectedWorkloads(flags: BenchFlags): Promise<Workload[]> {
  let workloads: Workload[] = [...BUILTIN_WORKLOADS]
  for (const file of flags.workload ?? []) workloads.push(...(await loadWorkloadFile(file)))
  if (flags.only) {
    const names = flags.only.split(',')
    const unknown = names.filter((n) => !workloads.some((w) => w.name === n))
    if (unknown.length > 0)
      throw new UsageError(`unknown workload ${unknown.join(', ')}; known: ${workloads.map((w) => w.name).join(', ')}`)
    workloads = workloads.filter((w) => names.includes(w.name))
  }
  return workloads
}

const outDir = (flags: BenchFlags) =>
  resolve(flags.out ?? `airlock-bench-${new Date().toISOString().replace(/[:.]/g, '-')}`)

function progress(): (done: number, total: number, label: string) => void {
  const isTty = process.stderr.isTTY
  return (done, total, label) => {
    const width = 30
    const filled = Math.min(width, Math.round((done / Math.max(total, 1)) * width))
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${new TerminalFilter().push(label)}`
    // The clearing of the line is ours; the label (a workload's name) is not.
    rawStderr(isTty ? `\r\x1b[K${line}` : `${line}\n`)
  }
}

/** `airlock bench --sandboxes`: the workloads under several sandbox configurations, directly on this machine. */
export async function benchSandboxesCommand(flags: BenchFlags): Promise<number> {
  const asked = (flags.sandboxes ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const names = asked.includes('all') ? SANDBOX_CONFIG_NAMES : asked
  const unknown = names.filter((n) => !(SANDBOX_CONFIG_NAMES as string[]).includes(n))
  if (names.length === 0 || unknown.length > 0)
    throw new UsageError(
      `--sandboxes takes a comma-separated list of ${SANDBOX_CONFIG_NAMES.join(', ')}, or all${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`,
    )
  if (process.getuid?.() !== 0)
    throw new UsageError('--sandboxes starts sandboxes on this machine and needs root, as a local worker does')
  const workloads = await selectedWorkloads(flags)
  const jobs = int('jobs', flags.jobs, flags.quick ? 3 : 10, 1, 10_000)
  const out = outDir(flags)
  const report = await compareSandboxes({
    names: names as SandboxConfigName[],
    workloads,
    jobs,
    onProgress: progress(),
  })
  if (process.stderr.isTTY) rawStderr('\r\x1b[K')
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'sandboxes.json'), `${JSON.stringify(report, null, 2)}\n`)
  if (flags.json) print(process.stdout, `${jsonText(report)}\n`)
  else print(process.stdout, `${renderSandboxTable(report)}\n\nwrote ${join(out, 'sandboxes.json')}\n`)
  return report.configs.some((c) => c.unavailable) ? EXIT.unavailable : EXIT.ok
}

/** `airlock bench`: gVisor against runc on the built-in and the user's workloads. */
export async function benchCommand(client: Airlock, apiKey: string, flags: BenchFlags): Promise<number> {
  const workloads = await selectedWorkloads(flags)
  const jobsPerRuntime = int('jobs', flags.jobs, flags.quick ? 3 : 10, 1, 10_000)
  const concurrency = int('concurrency', flags.concurrency, 2, 1, 256)
  const ingestSeconds = int('ingest-seconds', flags.ingestSeconds, flags.quick ? 2 : 10, 0, 600)
  const out = outDir(flags)

  let direct: Awaited<ReturnType<typeof directRunner>> | undefined
  if (flags.direct !== false) {
    direct = await directRunner()
    if ('unavailable' in direct)
      print(
        process.stderr,
        `airlock bench: no direct runs (${direct.unavailable}); the service overhead is not reported\n`,
      )
  }
  const isTty = process.stderr.isTTY
  try {
    const report = await runBench(client, {
      jobsPerRuntime,
      concurrency,
      workloads,
      direct: direct && 'runner' in direct ? direct.runner : undefined,
      ingestSeconds,
      apiKey,
      onProgress: progress(),
    })
    if (isTty) rawStderr('\r\x1b[K')
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'bench.json'), `${JSON.stringify(report, null, 2)}\n`)
    await writeFile(join(out, 'report.html'), renderHtml(report))
    if (flags.json) print(process.stdout, `${jsonText(report)}\n`)
    else
      print(
        process.stdout,
        `${renderTable(report)}\n\nwrote ${join(out, 'bench.json')} and ${join(out, 'report.html')}\n`,
      )
    return EXIT.ok
  } finally {
    if (direct && 'runner' in direct) await direct.close()
  }
}
