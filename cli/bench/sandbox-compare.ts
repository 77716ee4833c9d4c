import { rm } from 'node:fs/promises'
import { cpus, release, totalmem } from 'node:os'
import { loadConfig } from '../../core/config.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import type { Isolation as IsolationRecord, JobOutcome } from '../../core/job.js'
import { createLogger } from '../../core/logger.js'
import type { Executor } from '../../worker/executors/executor.js'
import { createExecutor } from '../../worker/executors/create-executor.js'
import { removeCgroup } from '../../worker/executors/local/cgroup-host.js'
import { alignColumns, ms } from './report.js'
import { ratio, summarize, type Ratio, type Summary } from './stats.js'
import type { Workload } from './workloads.js'
import { SANDBOX_CONFIGS, type SandboxConfigDef, type SandboxConfigName } from './sandbox-configs.js'

export { SANDBOX_CONFIG_NAMES, type SandboxConfigName } from './sandbox-configs.js'

export interface SandboxResult {
  config: SandboxConfigName
  statuses: Record<string, number>
  /** Why each job that did not succeed ended as it did: its reason and the last line it wrote to stderr. */
  failures: string[]
  /** Executor's start of the sandbox: bundle, cgroup, runsc create to the program's start. */
  startupMs: Summary | null
  /** The program's start to its end. */
  runMs: Summary | null
  /** The whole run as the caller waits for it. */
  wallMs: Summary | null
  /** What the program measured of itself (workloads that time themselves), ms. */
  innerMs: Summary | null
  innerOverRunc: Ratio | null
  /** Against runc: run time and the whole run. */
  runOverRunc: Ratio | null
  wallOverRunc: Ratio | null
}

export interface SandboxCompareReport {
  schema: 'airlock-bench-sandboxes/1'
  startedAt: string
  finishedAt: string
  machine: { cpus: number; memoryMb: number; kernel: string }
  jobsPerConfig: number
  configs: {
    name: SandboxConfigName
    describe: string
    isolation: IsolationRecord | null
    unavailable: string | null
  }[]
  workloads: { name: string; stresses: string; skipped: string | null; results: SandboxResult[] }[]
}

interface Runner {
  name: SandboxConfigName
  executor: Executor
  runc: boolean
}

/**
 * Runs each workload `jobs` times under each configuration, round-robin (each round in
 * a rotated order, so drift of the machine hits all alike), one job at a time.
 * Needs root, runsc, runc and the images, as a local worker does.
 */
export async function compareSandboxes(options: {
  names: readonly SandboxConfigName[]
  workloads: readonly Workload[]
  jobs: number
  onProgress?: (done: number, total: number, label: string) => void
}): Promise<SandboxCompareReport> {
  const startedAt = new Date().toISOString()
  const cgroupParent = `airlock-bench-${process.pid}`
  const stateRoot = `/run/airlock-bench-${process.pid}`
  const base = loadConfig({
    ...process.env,
    AIRLOCK_EXECUTOR: 'local',
    AIRLOCK_SANDBOX_NETWORK: 'none',
    AIRLOCK_CGROUP_PARENT: cgroupParent,
  })
  const runners: Runner[] = []
  const configs: SandboxCompareReport['configs'] = []
  try {
    for (const name of options.names) {
      const def: SandboxConfigDef = SANDBOX_CONFIGS[name]
      const config = loadConfig({
        ...process.env,
        AIRLOCK_EXECUTOR: 'local',
        AIRLOCK_SANDBOX_NETWORK: 'none',
        AIRLOCK_CGROUP_PARENT: cgroupParent,
        AIRLOCK_STATE_DIR: `${stateRoot}/${name}`,
        AIRLOCK_RUNSC_PATH: def.runscPath ?? base.runscPath,
        AIRLOCK_RUNSC_PLATFORM: def.platform ?? base.runscPlatform,
      })
      const executor = createExecutor(config, createLogger('silent'), {
        warm: false,
        ...(def.seccomp === false ? { seccomp: false as const } : {}),
      })
      const report = await executor.checkIsolation()
      configs.push({
        name,
        describe: def.describe,
        isolation: def.runc ? null : report.isolation,
        unavailable: report.ok ? null : (report.reason ?? 'isolation check failed'),
      })
      if (report.ok) runners.push({ name, executor, runc: def.runc === true })
      else await executor.close()
    }
    const total = options.workloads.length * options.jobs * runners.length
    let done = 0
    let n = 0
    const workloads: SandboxCompareReport['workloads'] = []
    for (const w of options.workloads) {
      const samples = new Map(
        runners.map((r) => [
          r.name,
          {
            startup: [] as number[],
            run: [] as number[],
            wall: [] as number[],
            inner: [] as number[],
            statuses: {} as Record<string, number>,
            failures: [] as string[],
          },
        ]),
      )
      let skipped: string | null = null
      for (let round = 0; round < options.jobs && !skipped; round++) {
        for (let i = 0; i < runners.length && !skipped; i++) {
          const runner = runners[(round + i) % runners.length]!
          const spec = resolveJobSpec(
            { ...w.request, isolation: runner.runc ? 'runc' : 'gvisor' } as Parameters<typeof resolveJobSpec>[0],
            base,
          )
          const s = samples.get(runner.name)!
          const t0 = performance.now()
          const jobId = `bench_${process.pid}_${n++}`
          try {
            const outcome = await runner.executor.run({
              jobId,
              tenant: 'bench',
              spec,
              signal: new AbortController().signal,
            })
            const wall = performance.now() - t0
            // As a worker does once the result is stored: the sandbox is removed now, not beside the next job's run.
            await runner.executor.forget?.(jobId)
            s.statuses[outcome.status] = (s.statuses[outcome.status] ?? 0) + 1
            if (outcome.status !== 'succeeded') s.failures.push(describeFailure(outcome))
            if (outcome.status === 'succeeded') {
              s.wall.push(wall)
              if (outcome.startupMs !== null) s.startup.push(outcome.startupMs)
              if (outcome.runMs !== null) s.run.push(outcome.runMs)
              const seconds = w.timesItself ? Number(outcome.stdout.trim().split('\n').pop()) : NaN
              if (Number.isFinite(seconds)) s.inner.push(seconds * 1000)
            }
          } catch (err) {
            // A runtime whose image is not installed here, say: the workload is skipped.
            skipped = (err as Error).message
          }
          options.onProgress?.(++done, total, `${w.name} ${runner.name}`)
        }
      }
      const runc = samples.get('runc')
      workloads.push({
        name: w.name,
        stresses: w.stresses,
        skipped,
        results: skipped
          ? []
          : runners.map((r) => {
              const s = samples.get(r.name)!
              return {
                config: r.name,
                statuses: s.statuses,
                failures: s.failures,
                startupMs: summarize(s.startup),
                runMs: summarize(s.run),
                wallMs: summarize(s.wall),
                innerMs: summarize(s.inner),
                innerOverRunc: runc && r.name !== 'runc' ? ratio(s.inner, runc.inner) : null,
                runOverRunc: runc && r.name !== 'runc' ? ratio(s.run, runc.run) : null,
                wallOverRunc: runc && r.name !== 'runc' ? ratio(s.wall, runc.wall) : null,
              }
            }),
      })
    }
    return {
      schema: 'airlock-bench-sandboxes/1',
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: { cpus: cpus().length, memoryMb: Math.round(totalmem() / 2 ** 20), kernel: release() },
      jobsPerConfig: options.jobs,
      configs,
      workloads,
    }
  } finally {
    for (const r of runners) await r.executor.close()
    await removeCgroup(cgroupParent).catch(() => undefined)
    await rm(stateRoot, { recursive: true, force: true })
  }
}

/** A job that did not succeed -> one line for the report: its status, reason and last stderr line. */
export function describeFailure(outcome: Pick<JobOutcome, 'status' | 'reason' | 'stderr'>): string {
  const lastLine = outcome.stderr.trimEnd().split('\n').pop()?.slice(0, 300) ?? ''
  return `${outcome.status}: ${outcome.reason ?? 'no reason given'}${lastLine ? ` (stderr: ${lastLine})` : ''}`
}

const x = (r: Ratio | null) => (r === null ? '-' : `${r.ofMedians.toFixed(2)}x`)

/** The terminal table of a comparison: one row per workload and configuration. */
export function renderSandboxTable(report: SandboxCompareReport): string {
  const rows: string[][] = [
    [
      'WORKLOAD',
      'SANDBOX',
      'OK',
      'START p50',
      'RUN p50',
      'RUN p90',
      'WALL p50',
      'RUN/RUNC',
      'WALL/RUNC',
      'INNER p50',
      'INNER/RUNC',
    ],
  ]
  for (const w of report.workloads) {
    if (w.skipped) {
      rows.push([w.name, '-', '-', '', '', '', '', '', `skipped: ${w.skipped.split('\n')[0]}`])
      continue
    }
    for (const r of w.results) {
      rows.push([
        w.name,
        r.config,
        `${r.wallMs?.n ?? 0}/${Object.values(r.statuses).reduce((a, b) => a + b, 0)}`,
        ms(r.startupMs?.p50),
        ms(r.runMs?.p50),
        ms(r.runMs?.p90),
        ms(r.wallMs?.p50),
        x(r.runOverRunc),
        x(r.wallOverRunc),
        ms(r.innerMs?.p50),
        x(r.innerOverRunc),
      ])
    }
  }
  const lines = alignColumns(rows)
  lines.push(
    '',
    "times in ms, each job alone; START = sandbox start to the program's start; RUN = the program; WALL = the whole run; INNER = what a workload timed of itself;",
  )
  lines.push('ratios are of medians, to runc')
  for (const w of report.workloads)
    for (const r of w.results) for (const f of r.failures) lines.push(`${w.name}/${r.config} job ${f}`)
  for (const c of report.configs)
    lines.push(
      `${c.name}: ${c.describe}${c.isolation ? ` (runsc ${c.isolation.version}, ${c.isolation.platform})` : ''}${c.unavailable ? ` - not run: ${c.unavailable}` : ''}`,
    )
  return lines.join('\n')
}
