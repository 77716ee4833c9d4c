/** A console-like logger; the SDK logs retries and reconnects at debug/warn. */
export interface Logger {
  debug(message: string, ...rest: unknown[]): void
  warn(message: string, ...rest: unknown[]): void
}

export interface AirlockOptions {
  /**
   * Base URL of the Airlock API.
   * @default process.env.AIRLOCK_URL ?? 'http://127.0.0.1:8080'
   */
  baseUrl?: string
  /**
   * The tenant's API key.
   * @default process.env.AIRLOCK_API_KEY
   */
  apiKey?: string
  /**
   * Time limit of one HTTP request, milliseconds (a held `wait` request gets the job's
   * own limit on top).
   * @default 30000
   */
  requestTimeoutMs?: number
  /**
   * Retries of a call the server refused with 429 or 503, or (for calls that are safe
   * to repeat) that failed on the network. Backoff doubles from 250 ms, capped at 8 s,
   * or follows Retry-After.
   * @default 3
   */
  maxRetries?: number
  /**
   * The most bytes of one answer the SDK reads, far above any the API sends (a job's
   * output, an artifact): past it the call fails (AIRLOCK_SDK_ANSWER_TOO_LARGE), so a
   * broken or hostile server that does not stop cannot fill this process's memory.
   * @default 268435456 (256 MiB)
   */
  maxAnswerBytes?: number
  /** Receives debug and warning messages. @default silent */
  logger?: Logger
}

/** Per-call options: every call takes them. */
export interface CallOptions {
  /** Aborts the call. */
  signal?: AbortSignal
  /** Overrides `requestTimeoutMs` for this call, milliseconds. */
  timeoutMs?: number
}
