import type { Job } from '../core/job.js'
import type { JobRequest } from '../core/job-spec.js'

/** An error answer of the Airlock API; `code` is one of core/errors.ts. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export interface ClientOptions {
  baseUrl: string
  apiKey: string
}

/**
 * The small REST client the CLI uses. It talks to Airlock only through its public
 * API, as any tenant would.
 */
export class AirlockClient {
  private readonly baseUrl: string

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
  }

  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.options.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    })
    const text = await res.text()
    let parsed: unknown
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    if (res.status >= 400) {
      const err = (parsed ?? {}) as { code?: string; message?: string }
      throw new ApiError(res.status, err.code ?? 'AIRLOCK_ERR_UNKNOWN', err.message ?? `HTTP ${res.status}`)
    }
    return { status: res.status, body: parsed as T }
  }

  async submit(request: JobRequest): Promise<{ id: string }> {
    return (await this.call<{ id: string }>('POST', '/v1/jobs', request)).body
  }

  async get(id: string): Promise<Job> {
    return (await this.call<Job>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).body
  }

  /** Submits a job and returns it once it has ended. */
  async run(request: JobRequest, signal?: AbortSignal): Promise<Job> {
    const res = await this.call<Job | { id: string }>('POST', '/v1/jobs?wait=true', request, signal)
    if (res.status === 200) return res.body as Job
    return this.waitFor(res.body.id, signal)
  }

  /** Polls until the job has ended (used when a held request returned before the end). */
  async waitFor(id: string, signal?: AbortSignal): Promise<Job> {
    for (;;) {
      const job = await this.get(id)
      if (job.status !== 'queued' && job.status !== 'running') return job
      signal?.throwIfAborted()
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}
