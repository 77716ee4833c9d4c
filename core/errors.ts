/**
 * The catalogue of Airlock errors. Clients branch on `code`, never on the message,
 * so a code, once published, keeps its meaning and its HTTP status.
 */
export const ErrorCodes = {
  AIRLOCK_ERR_UNAUTHORIZED: 401,
  AIRLOCK_ERR_VALIDATION: 400,
  /** The HTTP request itself could not be parsed. */
  AIRLOCK_ERR_BAD_REQUEST: 400,
  AIRLOCK_ERR_REQUEST_TIMEOUT: 408,
  AIRLOCK_ERR_HEADERS_TOO_LARGE: 431,
  AIRLOCK_ERR_URI_TOO_LONG: 414,
  AIRLOCK_ERR_MALFORMED_JSON: 400,
  /** A JSON body nested deeper, or holding more values or distinct names, than any request takes; not parsed. */
  AIRLOCK_ERR_JSON_TOO_COMPLEX: 400,
  AIRLOCK_ERR_UNKNOWN_RUNTIME: 400,
  AIRLOCK_ERR_SOURCE_REQUIRED: 400,
  AIRLOCK_ERR_INVALID_FILE: 400,
  AIRLOCK_ERR_LIMIT_EXCEEDED: 400,
  AIRLOCK_ERR_QUOTA_JOB_LIMITS: 400,
  AIRLOCK_ERR_QUOTA_RATE: 429,
  AIRLOCK_ERR_QUOTA_QUEUED: 429,
  /** The submission would take the tenant past the bytes it may hold in Redis. */
  AIRLOCK_ERR_QUOTA_STORAGE: 429,
  /** The tenant, or the client's address, has its most WebSocket streams open. */
  AIRLOCK_ERR_TOO_MANY_STREAMS: 429,
  /** The tenant holds its most unused stream tokens; one is freed when it is used or expires. */
  AIRLOCK_ERR_TOO_MANY_STREAM_TOKENS: 429,
  /** The client's address sent too many API keys or stream tokens that open nothing this second; not looked up. */
  AIRLOCK_ERR_TOO_MANY_FAILED_KEYS: 429,
  /** The process, or the client's address, has its most connections open. */
  AIRLOCK_ERR_TOO_MANY_CONNECTIONS: 503,
  AIRLOCK_ERR_FORBIDDEN: 403,
  AIRLOCK_ERR_TENANT_EXISTS: 409,
  AIRLOCK_ERR_ISOLATION_FORBIDDEN: 403,
  AIRLOCK_ERR_NOT_FOUND: 404,
  AIRLOCK_ERR_ROUTE_NOT_FOUND: 404,
  AIRLOCK_ERR_METHOD_NOT_ALLOWED: 405,
  AIRLOCK_ERR_JOB_FINISHED: 409,
  /** An Idempotency-Key sent again with another request than the one that made its job. */
  AIRLOCK_ERR_IDEMPOTENCY_KEY_REUSED: 409,
  /** A WebSocket route asked for without the upgrade. */
  AIRLOCK_ERR_UPGRADE_REQUIRED: 426,
  /** A request to a listener bound to loopback that names another host (a page whose name resolves to 127.0.0.1). */
  AIRLOCK_ERR_MISDIRECTED: 421,
  /** An Expect header other than 100-continue. */
  AIRLOCK_ERR_EXPECTATION_FAILED: 417,
  AIRLOCK_ERR_BODY_TOO_LARGE: 413,
  AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  AIRLOCK_ERR_INTERNAL: 500,
  AIRLOCK_ERR_ISOLATION_UNAVAILABLE: 503,
  AIRLOCK_ERR_STORE_UNAVAILABLE: 503,
  /** The API process is sending as much job output as it may hold at once; retry shortly. */
  AIRLOCK_ERR_OUTPUT_BUSY: 503,
  /** The API process is receiving as many request bytes as it may hold at once; retry shortly. */
  AIRLOCK_ERR_BODIES_BUSY: 503,
  /** Redis refused a write (its maxmemory is reached); nothing was accepted. */
  AIRLOCK_ERR_STORE_FULL: 503,
  /** A call that answers only once its job has run (Piston's execute) waited its longest; the job was cancelled, retry. */
  AIRLOCK_ERR_WAIT_EXPIRED: 503,
  /** The web console's files were not built with this install (npm run build makes them). */
  AIRLOCK_ERR_CONSOLE_UNAVAILABLE: 503,
} as const

export type ErrorCode = keyof typeof ErrorCodes

/** One detail of a validation failure: where in the request, and what is wrong. */
export interface ErrorDetail {
  path: string
  message: string
}

export class AirlockError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly details: ErrorDetail[] | undefined
  /** When a retry may succeed, seconds (the Retry-After header of a 429). */
  readonly retryAfterSeconds: number | undefined

  constructor(code: ErrorCode, message: string, details?: ErrorDetail[], retryAfterSeconds?: number) {
    super(message)
    this.name = 'AirlockError'
    this.code = code
    this.statusCode = ErrorCodes[code]
    this.details = details
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** The answer (never read) to a client that went while its request waited for something. */
export function clientLeft(during: string): AirlockError {
  return new AirlockError('AIRLOCK_ERR_BAD_REQUEST', `the client left ${during}`)
}

/** Codes of an error on a connection its client dropped (reset, or written to after it went). */
const DROPPED_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'])

/**
 * The error is a connection closed under a write or read: most often its client dropped
 * it (our own cut of a slow reader ends the same way), not a fault of ours, so logged
 * without a stack (a hostile client can make one per connection it opens).
 */
export function droppedByClient(err: unknown): boolean {
  return DROPPED_CONNECTION_CODES.has(String((err as { code?: unknown } | undefined)?.code ?? ''))
}

export function isAirlockError(err: unknown): err is AirlockError {
  return err instanceof AirlockError
}
