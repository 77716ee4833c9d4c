import { cpus, release, totalmem } from 'node:os'
import autocannon from 'autocannon'
import type { Airlock, Job, JobRequest } from '../../sdk/src/index.js'
import { AirlockError } from '../../sdk/src/index.js'
import { ratio, summarize, type Ratio, type Summary } from './stats.js'
import type { Workload } from './workloads.js'

export type Isolation = 'gvisor' | 'runc'
export const ISOLATIONS: readonly Isolation[] = ['gvisor', 'runc']

export interface Samples {
  /** Accepted to program started (queue wait + sandbox start), from the job's timings. */
  submitToStartMs: number[]
  /** Program started to ended, from the job's timings. */
  startToEndMs: number[]
  /** Submit to result received, measured by the client. */
  endToEndMs: number[]
  /** How each job's sandbox started (the job's sandboxStart), in the order of endToEndMs. */
  starts: ('warm' | 'cold' | null)[]
  /** Program ended to result stored, from the job's timings (the jobs that have it; not aligned with the rest). */
  exitToResultMs: number[]
}

/** The jobs of one kind of start (warm: a sandbox of the pool; cold: booted for the job). */
export interface StartResult {
  jobs: number
  submitToStartMs: Summary | null
  endToEndMs: Summary | null
  /** End-to-end p50 / the raw `runsc run` p50 (gVisor, where measured). */
  overRaw: number | null
}

export interface RuntimeResult {
  samples: Samples
  submitToStartMs: Summary | null
  startToEndMs: Summary | null
  endToEndMs: Summary | null
  /** Program ended to its result stored, as the job's timings say. */
  exitToResultMs: Summary | null
  /** Jobs finished per second of this runtime's share of the phase: n / (sum of end-to-end / concurrency). */
  throughputJobsPerS: number | null
  statuses: Record<string, number>
  /** The same workload run directly by the executor on this machine (no API, no queue). */
  directMs: Summary | null
  /** End-to-end p50 minus direct p50: what the service adds. */
  serviceOverheadMs: number | null
  /**
   * A raw `runsc run` of the same program in the same image, by hand (`runsc spec`'s
   * bundle, none of Airlock's sandbox around it): gVisor's floor. gVisor only; null
   * where it is not measured (runc, Kubernetes, a compiled runtime, --no-direct).
   */
  rawMs: Summary | null
  /** End-to-end p50 / raw p50. */
  endToEndOverRaw: number | null
  /** Not measurable through the public API (the sandbox's cgroup is gone when the job ends). */
  memoryOverheadMb: null
  /** The same numbers for warm and for cold starts, side by side. */
  byStart: { warm: StartResult; cold: StartResult }
}

export interface WorkloadResult {
  name: string
  stresses: string
  runtime: string
  skipped: string | null
  gvisor: RuntimeResult | null
  runc: RuntimeResult | null
  /** gVisor / runc. */
  ratios: { startToEnd: Ratio | null; endToEnd: Ratio | null; submitToStart: Ratio | null }
}

export interface IngestResult {
  route: string
  requestsPerSec: number
  /** Jobs accepted per second (a batch carries many; a refused job is not counted). */
  jobsPerSec?: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  non2xx: number
  errors: number
}

export interface BenchReport {
  schema: 'airlock-bench/1'
  startedAt: string
  finishedAt: string
  target: string
  settings: { jobsPerRuntime: number; concurrency: number; direct: boolean; ingestSeconds: number }
  machine: { cpus: number; memoryMb: number; kernel: string }
  workloads: WorkloadResult[]
  ingest: IngestResult[]
}

export interface DirectRunner {
  /** Wall time of running the job directly in a sandbox (or runc container), ms; null if it did not succeed. */
  run(request: JobRequest, isolation: Isolation): Promise<number | null>
  /** Wall time of a raw `runsc run` of the job's program (see RuntimeResult.rawMs), ms; null if not measured. */
  raw?(request: JobRequest): Promise<number | null>
}

export interface BenchOptions {
  jobsPerRuntime: number
  concurrency: number
  workloads: readonly Workload[]
  direct?: DirectRunner
  ingestSeconds: number
  apiKey: string
  onProgress?: (done: number, total: number, label: string) => void
}

/** Runs `tasks` with at most `concurrency` at once, in order of start. */
async function pool<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++
        results[i] = await tasks[i]!()
      }
    }),
  )
  return results
}

/** A, B, B, A, A, B, ...: interleaved so drift of the machine hits both runtimes alike. */
export function interleave(n: number): Isolation[] {
  return Array.from({ length: 2 * n }, (_, i) => (Math.floor((i + 1) / 2) % 2 === 0 ? 'gvisor' : 'runc'))
}

const over = (a: Summary | null, b: Summary | null) => (a && b ? a.p50 / b.p50 : null)

function startResult(samples: Samples, start: 'warm' | 'cold', raw: Summary | null): StartResult {
  const of = (values: number[]) => values.filter((_, i) => (samples.starts[i] ?? 'cold') === start)
  const endToEndMs = summarize(of(samples.endToEndMs))
  return {
    jobs: of(samples.endToEndMs).length,
    submitToStartMs: summarize(of(samples.submitToStartMs)),
    endToEndMs,
    overRaw: over(endToEndMs, raw),
  }
}

function runtimeResult(
  samples: Samples,
  statuses: Record<string, number>,
  concurrency: number,
  direct: number[],
  raw: number[] = [],
): RuntimeResult {
  const e2e = summarize(samples.endToEndMs)
  const busy = samples.endToEndMs.reduce((a, b) => a + b, 0) / concurrency
  const d = summarize(direct)
  const rawMs = summarize(raw)
  return {
    samples,
    submitToStartMs: summarize(samples.submitToStartMs),
    startToEndMs: summarize(samples.startToEndMs),
    endToEndMs: e2e,
    exitToResultMs: summarize(samples.exitToResultMs),
    throughputJobsPerS: busy > 0 ? samples.endToEndMs.length / (busy / 1000) : null,
    statuses,
    directMs: d,
    serviceOverheadMs: e2e && d ? e2e.p50 - d.p50 : null,
    rawMs,
    endToEndOverRaw: over(e2e, rawMs),
    memoryOverheadMb: null,
    byStart: { warm: startResult(samples, 'warm', rawMs), cold: startResult(samples, 'cold', rawMs) },
  }
}

/** Drives a running Airlock through its public API and measures what gVisor costs next to runc. */
export async function runBench(client: Airlock, options: BenchOptions): Promise<BenchReport> {
  const startedAt = new Date().toISOString()
  const available = new Map((await client.runtimes()).map((r) => [r.name, r.version]))
  const plans = options.workloads.map((w) => ({
    w,
    skipped: !available.has(w.request.runtime)
      ? `runtime ${w.request.runtime} is not in the catalog`
      : available.get(w.request.runtime) === null
        ? `no live worker has runtime ${w.request.runtime} installed`
        : null,
  }))
  const perRuntime = options.jobsPerRuntime
  const total = plans.filter((p) => !p.skipped).length * perRuntime * 2 * (options.direct ? 1.5 : 1)
  let done = 0
  const tick = (label: string) => options.onProgress?.(++done, Math.round(total), label)
  const workloads: WorkloadResult[] = []

  for (const { w, skipped } of plans) {
    if (skipped) {
      workloads.push({
        name: w.name,
        stresses: w.stresses,
        runtime: w.request.runtime,
        skipped,
        gvisor: null,
        runc: null,
        ratios: { startToEnd: null, endToEnd: null, submitToStart: null },
      })
      continue
    }
    const samples: Record<Isolation, Samples> = {
      gvisor: { submitToStartMs: [], startToEndMs: [], endToEndMs: [], starts: [], exitToResultMs: [] },
      runc: { submitToStartMs: [], startToEndMs: [], endToEndMs: [], starts: [], exitToResultMs: [] },
    }
    const statuses: Record<Isolation, Record<string, number>> = { gvisor: {}, runc: {} }
    const order = interleave(perRuntime)
    await pool(
      order.map((isolation) => async () => {
        const t0 = performance.now()
        let job: Job
        try {
          job = await client.run({ ...w.request, isolation })
        } catch (err) {
          if (err instanceof AirlockError && err.code === 'AIRLOCK_ERR_ISOLATION_FORBIDDEN') {
            throw new AirlockError(
              `this tenant may not use the runc comparison runtime: add it to AIRLOCK_BENCH_TENANTS on the server (${err.message})`,
              err.code,
              err.status,
            )
          }
          throw err
        }
        const e2e = performance.now() - t0
        statuses[isolation][job.status] = (statuses[isolation][job.status] ?? 0) + 1
        if (job.status === 'succeeded') {
          const s = samples[isolation]
          // Only jobs with every timing count, so the arrays stay aligned with `starts`.
          if (job.timings.queuedMs !== null && job.timings.startupMs !== null && job.timings.runMs !== null) {
            s.endToEndMs.push(e2e)
            s.submitToStartMs.push(job.timings.queuedMs + job.timings.startupMs)
            s.startToEndMs.push(job.timings.runMs)
            s.starts.push(job.sandboxStart)
          }
          if (job.timings.exitToResultMs !== null) s.exitToResultMs.push(job.timings.exitToResultMs)
        }
        tick(`${w.name} ${isolation}`)
      }),
      options.concurrency,
    )
    const direct: Record<Isolation, number[]> = { gvisor: [], runc: [] }
    const raw: number[] = []
    if (options.direct) {
      const runner = options.direct
      // Each direct gVisor run is followed by a raw one, so the machine's drift hits both alike.
      const runs = interleave(Math.ceil(perRuntime / 2)).flatMap((isolation) =>
        isolation === 'gvisor' && runner.raw ? [isolation, 'raw' as const] : [isolation],
      )
      // As many at once as the jobs through the service: two jobs sharing the cores are
      // slower each, and a baseline run one at a time would count that as the service's.
      await pool(
        runs.map((kind) => async () => {
          if (kind === 'raw') {
            const ms = await runner.raw!(w.request)
            if (ms !== null) raw.push(ms)
            return
          }
          const ms = await runner.run(w.request, kind)
          if (ms !== null) direct[kind].push(ms)
          tick(`${w.name} ${kind} direct`)
        }),
        options.concurrency,
      )
    }
    const g = runtimeResult(samples.gvisor, statuses.gvisor, options.concurrency, direct.gvisor, raw)
    const r = runtimeResult(samples.runc, statuses.runc, options.concurrency, direct.runc)
    workloads.push({
      name: w.name,
      stresses: w.stresses,
      runtime: w.request.runtime,
      skipped: null,
      gvisor: g,
      runc: r,
      ratios: {
        startToEnd: ratio(samples.gvisor.startToEndMs, samples.runc.startToEndMs),
        endToEnd: ratio(samples.gvisor.endToEndMs, samples.runc.endToEndMs),
        submitToStart: ratio(samples.gvisor.submitToStartMs, samples.runc.submitToStartMs),
      },
    })
  }

  const ingest = options.ingestSeconds > 0 ? await ingestBench(client, options.apiKey, options.ingestSeconds) : []
  return {
    schema: 'airlock-bench/1',
    startedAt,
    finishedAt: new Date().toISOString(),
    target: client.baseUrl,
    settings: {
      jobsPerRuntime: perRuntime,
      concurrency: options.concurrency,
      direct: !!options.direct,
      ingestSeconds: options.ingestSeconds,
    },
    machine: { cpus: cpus().length, memoryMb: Math.round(totalmem() / 2 ** 20), kernel: release() },
    workloads,
    ingest,
  }
}

/** Jobs in each batch the ingest run sends. */
export const INGEST_BATCH = 50

/**
 * Submissions per second to POST /v1/jobs and to its batch route next to GET /healthz (no work) on the same
 * server in the same run. The jobs it submits are cancelled right after.
 */
async function ingestBench(client: Airlock, apiKey: string, seconds: number): Promise<IngestResult[]> {
  const results: IngestResult[] = []
  const base = client.baseUrl.replace(/\/+$/, '')
  const job = { runtime: 'bash', source: 'true' }
  const targets = [
    { route: 'GET /healthz', url: `${base}/healthz`, method: 'GET' as const, body: undefined, jobsEach: 0 },
    { route: 'POST /v1/jobs', url: `${base}/v1/jobs`, method: 'POST' as const, body: JSON.stringify(job), jobsEach: 1 },
    {
      route: `POST /v1/jobs/batch (${INGEST_BATCH} jobs)`,
      url: `${base}/v1/jobs/batch`,
      method: 'POST' as const,
      body: JSON.stringify({ jobs: Array(INGEST_BATCH).fill(job) }),
      jobsEach: INGEST_BATCH,
    },
  ]
  for (const t of targets) {
    // A batch answers 200 whatever it took: count the jobs it says it accepted.
    let accepted = 0
    const r = await autocannon({
      url: t.url,
      method: t.method,
      connections: 8,
      duration: seconds,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      ...(t.body ? { body: t.body } : {}),
      ...(t.jobsEach > 1
        ? {
            requests: [
              {
                onResponse: (status: number, body: string) =>
                  void (accepted += status === 200 ? Number(/"accepted":(\d+)/.exec(body)?.[1] ?? 0) : 0),
              },
            ],
          }
        : {}),
    })
    const jobsPerSec =
      t.jobsEach === 0
        ? undefined
        : t.jobsEach === 1
          ? r.requests.average * (r['2xx'] / Math.max(1, r['2xx'] + r.non2xx))
          : accepted / seconds
    results.push({
      route: t.route,
      requestsPerSec: r.requests.average,
      ...(jobsPerSec === undefined ? {} : { jobsPerSec }),
      latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
      non2xx: r.non2xx,
      errors: r.errors,
    })
  }
  // Cancel what the ingest run queued, so the service is left as it was found: passes
  // over the tenant's unfinished jobs, page by page (a page can be empty and still not
  // the last: the server scans a bounded number of jobs per page), until a pass finds
  // none. Requests still in flight when the load generator stopped create jobs after
  // the first pass has gone by.
  for (let pass = 0; pass < 10; pass++) {
    let cancelled = 0
    let cursor: string | undefined
    do {
      const page = await client.jobs.list({ status: ['queued', 'running'], limit: 100, cursor })
      await Promise.all(page.items.map((j) => client.jobs.cancel(j.id).catch(() => undefined)))
      cancelled += page.items.length
      cursor = page.nextCursor ?? undefined
    } while (cursor)
    if (cancelled === 0) break
    await new Promise((r) => setTimeout(r, 200))
  }
  return results
}
