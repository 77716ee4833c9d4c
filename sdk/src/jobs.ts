import type {
  Job,
  JobAccepted,
  JobBatchResult,
  JobEvent,
  JobList,
  JobRequest,
  JobStatus,
  JobSummary,
  StepKind,
} from './api-types.js'
import { TimeoutError } from './errors.js'
import { sleep, type Http } from './http.js'
import type { CallOptions } from './options.js'
import { streamJobEvents, type StreamOptions } from './stream.js'
import { jobPath as path, pathSegment } from './paths.js'

const FINAL: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'])

/** Whether a job has ended (its status will not change again). */
export function isFinished(job: Pick<Job, 'status'>): boolean {
  return FINAL.has(job.status)
}

export interface ListOptions extends CallOptions {
  /** Keep only jobs with these statuses. */
  status?: JobStatus[]
  /** Page size, 1-100. @default 20 */
  limit?: number
  /** `nextCursor` of the previous page. */
  cursor?: string
}

export interface WaitOptions extends CallOptions {
  /** Give up waiting after this long, milliseconds (the job keeps running). @default no limit */
  timeoutMs?: number
  /** First poll interval, milliseconds; it grows to 2 s. @default 200 */
  pollIntervalMs?: number
}

export interface SubmitOptions extends CallOptions {
  /**
   * Sent as `Idempotency-Key`: the same request with the same key makes one job however
   * often it is sent, so a submit whose answer was lost is retried safely. Pass your own
   * (an order id, a UUID you keep) to be safe across restarts of your own process too.
   * @default a new random UUID per call, used for each of its retries
   */
  idempotencyKey?: string
}

export interface RunOptions extends SubmitOptions {
  /** Called with output as the job produces it. */
  onOutput?: (stream: 'stdout' | 'stderr', data: string) => void
  /** Called when the job's status changes (queued, running, ...). */
  onStatus?: (status: JobStatus) => void
  /** Called as each step of a compiled job or of a job with test cases starts (compile 0, run 1, test 1..n). */
  onStep?: (step: StepKind, index: number) => void
}

export class Jobs {
  constructor(private readonly http: Http) {}

  /**
   * Submits a job; it is queued. Retried when the server refused it (429, 503) and when
   * its answer was lost (network, timeout): its Idempotency-Key makes the retry the same
   * job, never a second one.
   */
  async create(request: JobRequest, options: SubmitOptions = {}): Promise<JobAccepted> {
    const { idempotencyKey = globalThis.crypto.randomUUID(), ...call } = options
    return (
      await this.http.request<JobAccepted>({
        method: 'POST',
        path: '/v1/jobs',
        body: request,
        headers: { 'idempotency-key': idempotencyKey },
        idempotent: true,
        ...call,
      })
    ).body
  }

  /**
   * Submits several jobs in one request (at most the server's AIRLOCK_MAX_BATCH_JOBS).
   * Each item is accepted (`id`) or refused (`error`, as a single submit would have
   * been); a batch the server could not take at all throws. Retried as `create` is: a
   * batch sent again with its key makes only the jobs it did not make before.
   */
  async createBatch(requests: JobRequest[], options: SubmitOptions = {}): Promise<JobBatchResult> {
    const { idempotencyKey = globalThis.crypto.randomUUID(), ...call } = options
    return (
      await this.http.request<JobBatchResult>({
        method: 'POST',
        path: '/v1/jobs/batch',
        body: { jobs: requests },
        headers: { 'idempotency-key': idempotencyKey },
        idempotent: true,
        ...call,
      })
    ).body
  }

  async get(id: string, options: CallOptions = {}): Promise<Job> {
    return (await this.http.request<Job>({ method: 'GET', path: path(id), idempotent: true, ...options })).body
  }

  /**
   * The job as it was submitted: runtime, files, entrypoint, args, stdin, tests, isolation, and its limits with
   * defaults filled in (not `env`: its values may be secrets).
   */
  async request(id: string, options: CallOptions = {}): Promise<JobRequest> {
    return (
      await this.http.request<JobRequest>({ method: 'GET', path: `${path(id)}/request`, idempotent: true, ...options })
    ).body
  }

  /** One page of this tenant's jobs, newest first. */
  async list(options: ListOptions = {}): Promise<JobList> {
    const { status, limit, cursor, ...call } = options
    return (
      await this.http.request<JobList>({
        method: 'GET',
        path: '/v1/jobs',
        query: { status: status?.join(','), limit, cursor },
        idempotent: true,
        ...call,
      })
    ).body
  }

  /** Every job of this tenant, newest first, page by page. */
  async *iterate(
    options: Omit<ListOptions, 'cursor'> & { max?: number } = {},
  ): AsyncGenerator<JobSummary, void, undefined> {
    const { max, ...list } = options
    let left = max ?? Infinity
    let cursor: string | undefined
    while (left > 0) {
      // `limit` is the page size; `max`, if given, how many jobs in all.
      const page = await this.list({
        ...list,
        ...(list.limit === undefined && max !== undefined ? { limit: Math.min(max, 100) } : {}),
        cursor,
      })
      for (const job of page.items.slice(0, left)) yield job
      left -= page.items.length
      cursor = page.nextCursor ?? undefined
      if (!cursor) return
    }
  }

  /** Asks for the job to be cancelled; returns the job as it is then. ConflictError if it has ended. */
  async cancel(id: string, options: CallOptions = {}): Promise<Job> {
    return (await this.http.request<Job>({ method: 'DELETE', path: path(id), idempotent: true, ...options })).body
  }

  /** The job's whole output so far, as text. */
  async logs(id: string, options: CallOptions = {}): Promise<string> {
    return (
      await this.http.request<string>({
        method: 'GET',
        path: `${path(id)}/logs`,
        idempotent: true,
        accept: 'text/plain',
        ...options,
      })
    ).body
  }

  /**
   * A file the job left in /workspace/out (one of `job.artifacts`), byte for byte.
   * `artifactPath` is relative to that directory and may hold slashes.
   */
  async artifact(id: string, artifactPath: string, options: CallOptions = {}): Promise<Uint8Array> {
    const encoded = artifactPath
      .split('/')
      .map((s) => pathSegment(s, 'artifact path segment'))
      .join('/')
    return (
      await this.http.request<Uint8Array>({
        method: 'GET',
        path: `${path(id)}/artifacts/${encoded}`,
        idempotent: true,
        accept: '*/*',
        binary: true,
        ...options,
      })
    ).body
  }

  /** Resolves with the job once it has ended. */
  async wait(id: string, options: WaitOptions = {}): Promise<Job> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs
    let interval = options.pollIntervalMs ?? 200
    for (;;) {
      const job = await this.get(id, { signal: options.signal })
      if (isFinished(job)) return job
      if (Date.now() + interval > deadline)
        throw new TimeoutError(`job ${id} had not ended after ${options.timeoutMs} ms`, 'AIRLOCK_SDK_TIMEOUT')
      await sleep(interval, options.signal)
      interval = Math.min(2000, interval * 1.5)
    }
  }

  /**
   * The job's events (output, status changes, then `end` with the final job) as an
   * async iterator; survives dropped connections without losing or repeating events.
   */
  stream(id: string, options: StreamOptions = {}): AsyncGenerator<JobEvent, void, undefined> {
    return streamJobEvents(this.http, id, options)
  }

  /** Submits a job, streams its output to `onOutput`, and resolves with the ended job. */
  async run(request: JobRequest, options: RunOptions = {}): Promise<Job> {
    const { id } = await this.create(request, options)
    try {
      for await (const event of this.stream(id, { signal: options.signal })) {
        if (event.type === 'log') options.onOutput?.(event.stream, event.data)
        else if (event.type === 'status') options.onStatus?.(event.status)
        else if (event.type === 'step') options.onStep?.(event.step, event.index)
        else if (event.type === 'end') return event.job
      }
    } catch (err) {
      if (options.signal?.aborted) throw err
      // The stream could not be kept up; the result is still there to fetch.
      this.http.options.logger.warn(
        `airlock: stream of ${id} failed (${(err as Error).message}); waiting for the result instead`,
      )
    }
    return this.wait(id, { signal: options.signal })
  }
}
