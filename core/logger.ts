import { pino, type DestinationStream, type Logger } from 'pino'

/** A logged URL is cut here, so a caller's 12 KB query string costs the log 256 bytes. */
export const LOGGED_URL_MAX = 256

/**
 * Query parameters whose values are logged as sent: the ones Airlock's routes read that
 * carry no secret. Every other value (a stream's `token`, and whatever a caller put in a
 * query by mistake: `?api_key=...`) is logged as `[redacted]`, so a parameter added
 * later is redacted until it is listed here.
 */
const LOGGED_QUERY_VALUES = new Set([
  'status',
  'limit',
  'cursor',
  'wait',
  'from',
  'base64_encoded',
  'fields',
  'tokens',
  'page',
  'per_page',
])

/** A query's name as the router reads it: `?%74oken=` is a token too. */
function queryName(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' '))
  } catch {
    return name // not valid percent-encoding: compared as it is
  }
}

/**
 * A request target fit for a log line: no credentials (the user and password of an
 * absolute-form target, `http://user:key@host/...`, and every query value not known to
 * be harmless), and bounded in length.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  let path = q < 0 ? url : url.slice(0, q)
  // An absolute-form target's authority ends at the first '/' after its scheme's '//'.
  const scheme = path.indexOf('://')
  if (scheme >= 0 && !path.startsWith('/')) {
    const from = scheme + 3
    const slash = path.indexOf('/', from)
    const at = path.lastIndexOf('@', slash < 0 ? path.length : slash)
    if (at >= from) path = `${path.slice(0, from)}[redacted]${path.slice(at)}`
  }
  const redacted =
    q < 0
      ? path
      : `${path}?${url
          .slice(q + 1)
          .split('&')
          .map((pair) => {
            const eq = pair.indexOf('=')
            const name = eq < 0 ? pair : pair.slice(0, eq)
            if (LOGGED_QUERY_VALUES.has(queryName(name))) return pair
            // A bare name not listed may itself be the secret.
            return eq < 0 ? '[redacted]' : `${name}=[redacted]`
          })
          .join('&')}`
  return redacted.length > LOGGED_URL_MAX ? `${redacted.slice(0, LOGGED_URL_MAX)}…(${redacted.length} chars)` : redacted
}

const bounded = (s: string | undefined, max = 128) => (s === undefined || s.length <= max ? s : `${s.slice(0, max)}…`)

/**
 * JSON logs for every process. Request lines carry the request id (and, once known, the
 * tenant and job id); nothing here ever logs bodies, so job source, stdin and output
 * never reach the logs, and keys and tokens are redacted from headers and URLs.
 */
export function createLogger(
  level: string,
  base: Record<string, unknown> = {},
  destination?: DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method?: string; url?: string; hostname?: string; ip?: string }) => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        hostname: bounded(req.hostname),
        remoteAddress: req.ip,
      }),
      err: pino.stdSerializers.err,
    },
  }
  return destination ? pino(options, destination) : pino(options)
}

/**
 * Adds fields (the tenant, the job id) to a request's logger. Fastify makes a logger for
 * each request, so its fields are extended in place instead of through a child of it: a
 * child (a new object on its own prototype) for each was ~25 us of every request.
 */
export function bindRequestLog<L extends { child(bindings: Record<string, unknown>): L }>(
  log: L,
  bindings: Record<string, unknown>,
): L {
  const settable = log as L & { setBindings?: (bindings: Record<string, unknown>) => void }
  if (typeof settable.setBindings !== 'function') return log.child(bindings)
  settable.setBindings(bindings)
  return log
}
