import type { RuntimeList } from './api-types.js'
import { AirlockError } from './errors.js'
import { DEFAULT_MAX_ANSWER_BYTES, Http } from './http.js'
import { Jobs, type RunOptions } from './jobs.js'
import type { AirlockOptions, CallOptions, Logger } from './options.js'
import type { Job, JobRequest } from './api-types.js'

const SILENT: Logger = { debug: () => undefined, warn: () => undefined }

function env(name: string): string | undefined {
  return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env[name] || undefined
}

/**
 * A client of the Airlock API.
 *
 * ```ts
 * const airlock = new Airlock() // AIRLOCK_URL, AIRLOCK_API_KEY
 * const job = await airlock.run({ runtime: 'python', source: 'print(6 * 7)' })
 * ```
 */
export class Airlock {
  readonly jobs: Jobs
  private readonly http: Http

  constructor(options: AirlockOptions = {}) {
    const apiKey = options.apiKey ?? env('AIRLOCK_API_KEY')
    if (!apiKey)
      throw new AirlockError('an API key is required: pass apiKey or set AIRLOCK_API_KEY', 'AIRLOCK_SDK_CONFIG')
    this.http = new Http({
      baseUrl: checkedBaseUrl(options.baseUrl ?? env('AIRLOCK_URL') ?? 'http://127.0.0.1:8080'),
      apiKey,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      maxRetries: options.maxRetries ?? 3,
      maxAnswerBytes: options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES,
      logger: options.logger ?? SILENT,
    })
    this.jobs = new Jobs(this.http)
  }

  get baseUrl(): string {
    return this.http.options.baseUrl
  }

  /** Submits a job, streams its output to `onOutput`, and resolves with the ended job. */
  run(request: JobRequest, options?: RunOptions): Promise<Job> {
    return this.jobs.run(request, options)
  }

  /** The runtimes jobs may ask for, with versions reported by live workers. */
  async runtimes(options: CallOptions = {}): Promise<RuntimeList['runtimes']> {
    return (await this.http.request<RuntimeList>({ method: 'GET', path: '/v1/runtimes', idempotent: true, ...options }))
      .body.runtimes
  }
}

/**
 * The base URL, refused when it is not an http(s) URL or carries credentials: a key in
 * `user:key@` would be printed wherever the URL is (errors, logs, bench reports), and the
 * API takes its key only as a bearer token.
 */
function checkedBaseUrl(baseUrl: string): string {
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    throw new AirlockError(`the base URL is not a URL: ${JSON.stringify(baseUrl)}`, 'AIRLOCK_SDK_CONFIG')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AirlockError(`the base URL must be http or https, got ${url.protocol}`, 'AIRLOCK_SDK_CONFIG')
  if (url.username !== '' || url.password !== '')
    throw new AirlockError(
      'the base URL must not carry credentials (user:key@): pass the key as apiKey',
      'AIRLOCK_SDK_CONFIG',
    )
  return baseUrl
}
