import type { ErrorResponse } from './api-types.js'

/**
 * Every error the SDK throws. `code` is the server's stable AIRLOCK_ERR_* code (or an
 * SDK one: AIRLOCK_SDK_TIMEOUT, AIRLOCK_SDK_CONNECTION, AIRLOCK_SDK_ABORTED); branch on
 * the class or on `code`, never on the message.
 */
export class AirlockError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** HTTP status, when the server answered. */
    readonly status?: number,
    readonly details?: ErrorResponse['details'],
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = new.target.name
  }
}

/** 401: missing, wrong or revoked API key. */
export class AuthenticationError extends AirlockError {}
/**
 * 403: the key is good but may not do this (an admin route, the runc comparison runtime, another tenant's audit trail).
 */
export class ForbiddenError extends AirlockError {}
/** 404: no such job for this tenant. */
export class NotFoundError extends AirlockError {}
/** 400, 413, 415, 422: the request is wrong; `details` says where. */
export class ValidationError extends AirlockError {}
/** 409: e.g. cancelling a job that has already ended. */
export class ConflictError extends AirlockError {}
/** 429: slow down; retry after `retryAfterMs`. */
export class RateLimitError extends AirlockError {
  constructor(
    message: string,
    code: string,
    status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message, code, status)
  }
}
/** 503: no worker can isolate jobs right now, or the store is down; the request was not taken. */
export class UnavailableError extends AirlockError {
  constructor(
    message: string,
    code: string,
    status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message, code, status)
  }
}
/** Any other 5xx. */
export class ServerError extends AirlockError {}
/** The call (or wait) took longer than its timeout. */
export class TimeoutError extends AirlockError {}
/** The server could not be reached, or the connection broke. */
export class ConnectionError extends AirlockError {}
/** The caller's AbortSignal fired. */
export class AbortedError extends AirlockError {}

/** Seconds or an HTTP date -> milliseconds from now. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

/** The one mapping from an error answer to an error class. */
export function errorFromResponse(
  status: number,
  body: Partial<ErrorResponse> | undefined,
  retryAfter: string | null,
): AirlockError {
  const code = body?.code ?? `HTTP_${status}`
  const message = body?.message ?? `the server answered ${status}`
  const retryAfterMs = parseRetryAfter(retryAfter)
  if (status === 401) return new AuthenticationError(message, code, status)
  if (status === 403) return new ForbiddenError(message, code, status)
  if (status === 404) return new NotFoundError(message, code, status)
  if (status === 409) return new ConflictError(message, code, status)
  if (status === 429) return new RateLimitError(message, code, status, retryAfterMs)
  if (status === 503) return new UnavailableError(message, code, status, retryAfterMs)
  if (status >= 400 && status < 500) return new ValidationError(message, code, status, body?.details)
  return new ServerError(message, code, status)
}
