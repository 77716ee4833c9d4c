import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Tenants beyond this many share the label "other", so label sets stay bounded. */
const MAX_TENANT_LABELS = 100

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

/**
 * Every metric Airlock exports, on one registry per process (API and worker in one
 * process share it). Labels are bounded: statuses, runtimes and error codes are fixed
 * sets; tenants are capped.
 */
export class Metrics {
  readonly registry = new Registry()
  private readonly tenants = new Set<string>()

  readonly jobsSubmitted = new Counter({
    name: 'airlock_jobs_submitted_total',
    help: 'Jobs accepted by the API',
    labelNames: ['runtime', 'tenant'],
    registers: [this.registry],
  })
  readonly jobsStarted = new Counter({
    name: 'airlock_jobs_started_total',
    help: 'Jobs a worker started',
    labelNames: ['runtime', 'tenant'],
    registers: [this.registry],
  })
  readonly jobsFinished = new Counter({
    name: 'airlock_jobs_finished_total',
    help: 'Jobs that reached a final status',
    labelNames: ['runtime', 'tenant', 'status'],
    registers: [this.registry],
  })
  readonly rejectedRequests = new Counter({
    name: 'airlock_requests_rejected_total',
    help: 'Requests answered with an error, by error code',
    labelNames: ['code'],
    registers: [this.registry],
  })
  readonly endToEnd = new Histogram({
    name: 'airlock_job_end_to_end_seconds',
    help: 'Accepted to final status',
    labelNames: ['runtime', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  })
  readonly queueWait = new Histogram({
    name: 'airlock_job_queue_wait_seconds',
    help: 'Accepted to picked up by a worker',
    labelNames: ['runtime'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  })
  readonly sandboxStart = new Histogram({
    name: 'airlock_sandbox_start_seconds',
    help: 'Picked up to program started (sandbox creation, or the claim of a warm one)',
    labelNames: ['runtime', 'start'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  })
  readonly run = new Histogram({
    name: 'airlock_job_run_seconds',
    help: 'Program started to program ended',
    labelNames: ['runtime', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  })
  readonly activeSandboxes = new Gauge({
    name: 'airlock_active_sandboxes',
    help: 'Sandboxes running now in this process',
    registers: [this.registry],
  })
  readonly logBytesPublished = new Counter({
    name: 'airlock_log_bytes_published_total',
    help: 'Output bytes workers wrote to job event streams',
    registers: [this.registry],
  })
  readonly streamBytesSent = new Counter({
    name: 'airlock_stream_bytes_sent_total',
    help: 'Bytes of log data sent to stream clients',
    registers: [this.registry],
  })
  readonly warmSandboxes = new Gauge({
    name: 'airlock_warm_sandboxes',
    help: "Warm sandboxes of this worker's pool by runtime and state (idle: waiting for a job; booting)",
    labelNames: ['runtime', 'state'],
    registers: [this.registry],
  })
  readonly warmClaims = new Counter({
    name: 'airlock_warm_claims_total',
    help: 'Jobs that looked for a warm sandbox: hit (found one) or miss (started cold)',
    labelNames: ['runtime', 'result'],
    registers: [this.registry],
  })
  readonly warmMemory = new Gauge({
    name: 'airlock_warm_sandbox_memory_bytes',
    help: 'Memory the idle warm sandboxes of this worker hold (counted against AIRLOCK_WARM_POOL_MEMORY_MB)',
    registers: [this.registry],
  })
  readonly streamClients = new Gauge({
    name: 'airlock_stream_clients',
    help: 'Open WebSocket stream clients in this process',
    registers: [this.registry],
  })

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'airlock_process_' })
  }

  /** The tenant's own label while fewer than the cap have been seen, else "other". */
  tenant(tenant: string): string {
    if (this.tenants.has(tenant)) return tenant
    if (this.tenants.size >= MAX_TENANT_LABELS) return 'other'
    this.tenants.add(tenant)
    return tenant
  }

  /** Queue depth and the age of the oldest queued job, read from Redis at each scrape. */
  addQueueGauges(read: () => Promise<{ counts: Record<string, number>; oldestQueuedAgeMs: number | null }>): void {
    let pending: Promise<void> | undefined
    // One Redis round trip serves both gauges of a scrape.
    const refresh = (): Promise<void> =>
      (pending ??= read()
        .then(({ counts, oldestQueuedAgeMs }) => {
          for (const [state, n] of Object.entries(counts)) depth.set({ state }, n)
          age.set((oldestQueuedAgeMs ?? 0) / 1000)
        })
        .catch(() => undefined)
        .finally(() => {
          pending = undefined
        }))
    const depth = new Gauge({
      name: 'airlock_queue_depth',
      help: 'Jobs in the queue by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect: refresh,
    })
    const age = new Gauge({
      name: 'airlock_queue_oldest_age_seconds',
      help: 'Age of the oldest job waiting in the queue (0 when none)',
      registers: [this.registry],
      collect: refresh,
    })
  }
}
