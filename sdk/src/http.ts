import {
  AbortedError,
  AirlockError,
  ConnectionError,
  errorFromResponse,
  RateLimitError,
  TimeoutError,
  UnavailableError,
} from './errors.js'
import type { CallOptions, Logger } from './options.js'

/** The most bytes of one answer read, unless told otherwise (AirlockOptions.maxAnswerBytes). */
export const DEFAULT_MAX_ANSWER_BYTES = 256 * 1024 * 1024

export interface HttpOptions {
  baseUrl: string
  apiKey: string
  requestTimeoutMs: number
  maxRetries: number
  maxAnswerBytes: number
  logger: Logger
}

export interface RequestSpec extends CallOptions {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  query?: Record<string, string | number | boolean | undefined>
  body?: unknown
  /** Safe to send twice (retried on network errors too). */
  idempotent: boolean
  /** Accept header; JSON by default. */
  accept?: string
  /** The answer is bytes (a Uint8Array), not text or JSON; errors are still JSON. */
  binary?: boolean
  /** Headers beyond the SDK's own (authorization, accept, content-type). */
  headers?: Record<string, string>
}

export interface HttpResponse<T> {
  status: number
  body: T
}

const BASE_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 8000

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError('aborted', 'AIRLOCK_SDK_ABORTED'))
    const timer = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }
    function onAbort() {
      clearTimeout(timer)
      reject(new AbortedError('aborted', 'AIRLOCK_SDK_ABORTED'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export function backoffMs(attempt: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 60_000)
  const base = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** attempt)
  return base / 2 + Math.random() * (base / 2)
}

/** HTTP with one error mapping, timeouts, abort, and retries where they are safe. */
export class Http {
  readonly options: Omit<HttpOptions, 'apiKey'>
  /**
   * The key lives in a private field, which neither JSON.stringify nor util.inspect shows:
   * a client logged with an error (`log.error({ client })`) does not log its key.
   */
  readonly #authorization: string

  constructor({ apiKey, ...options }: HttpOptions) {
    this.options = options
    this.#authorization = `Bearer ${apiKey}`
  }

  url(path: string, query?: RequestSpec['query']): string {
    const url = new URL(`${this.options.baseUrl.replace(/\/+$/, '')}${path}`)
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v))
    return url.toString()
  }

  async request<T>(spec: RequestSpec): Promise<HttpResponse<T>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once<T>(spec)
      } catch (err) {
        const retryable =
          err instanceof RateLimitError ||
          err instanceof UnavailableError ||
          (spec.idempotent && (err instanceof ConnectionError || err instanceof TimeoutError))
        if (!retryable || attempt >= this.options.maxRetries) throw err
        const waitMs = backoffMs(attempt, (err as RateLimitError).retryAfterMs)
        this.options.logger.debug(
          `airlock: ${spec.method} ${spec.path} failed (${(err as AirlockError).code}); retry ${attempt + 1} in ${Math.round(waitMs)} ms`,
        )
        await sleep(waitMs, spec.signal)
      }
    }
  }

  private async once<T>(spec: RequestSpec): Promise<HttpResponse<T>> {
    const timeoutMs = spec.timeoutMs ?? this.options.requestTimeoutMs
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout
    // Why a request or the read of its answer stopped: the caller, the time limit, or the network.
    const failure = (err: unknown, broke: string): AirlockError => {
      if (spec.signal?.aborted)
        return new AbortedError('aborted', 'AIRLOCK_SDK_ABORTED', undefined, undefined, { cause: err })
      if (timeout.aborted)
        return new TimeoutError(
          `${spec.method} ${spec.path} took longer than ${timeoutMs} ms`,
          'AIRLOCK_SDK_TIMEOUT',
          undefined,
          undefined,
          { cause: err },
        )
      return new ConnectionError(broke, 'AIRLOCK_SDK_CONNECTION', undefined, undefined, { cause: err })
    }
    let res: Response
    try {
      res = await fetch(this.url(spec.path, spec.query), {
        method: spec.method,
        headers: {
          authorization: this.#authorization,
          accept: spec.accept ?? 'application/json',
          ...(spec.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...spec.headers,
        },
        ...(spec.body === undefined ? {} : { body: JSON.stringify(spec.body) }),
        signal,
      })
    } catch (err) {
      throw failure(err, `cannot reach Airlock at ${this.options.baseUrl}: ${(err as Error).message}`)
    }
    let bytes: Uint8Array | undefined
    try {
      bytes = await readCapped(res, this.options.maxAnswerBytes)
    } catch (err) {
      throw failure(err, `the answer to ${spec.method} ${spec.path} broke off`)
    }
    if (!bytes)
      throw new AirlockError(
        `the answer to ${spec.method} ${spec.path} is over ${this.options.maxAnswerBytes} bytes`,
        'AIRLOCK_SDK_ANSWER_TOO_LARGE',
        res.status,
      )
    if (spec.binary && res.status < 400) return { status: res.status, body: bytes as T }
    const text = new TextDecoder().decode(bytes)
    const json = (res.headers.get('content-type') ?? '').includes('json') ? safeJson(text) : undefined
    if (res.status >= 400) throw errorFromResponse(res.status, json as never, res.headers.get('retry-after'))
    return { status: res.status, body: (json ?? text) as T }
  }
}

/** The whole body, or undefined once it passes `max` bytes (the rest is not read). */
async function readCapped(res: Response, max: number): Promise<Uint8Array | undefined> {
  if (!res.body) return new Uint8Array()
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => undefined)
      return undefined
    }
    chunks.push(value)
  }
  const whole = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    whole.set(chunk, at)
    at += chunk.byteLength
  }
  return whole
}

function safeJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined
  } catch {
    return undefined
  }
}
