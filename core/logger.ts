import { pino, type DestinationStream, type Logger } from 'pino'

/** A logged URL is cut here, so a caller's 12 KB query string costs the log 256 bytes. */
export const LOGGED_URL_MAX = 256

/** Strips stream tokens from URLs before they are logged, and bounds their length. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  // Names are compared decoded, as the router reads them: `?%74oken=` is a token too.
  const redacted =
    q < 0
      ? url
      : `${url.slice(0, q + 1)}${url
          .slice(q + 1)
          .split('&')
          .map((pair) => {
            const eq = pair.indexOf('=')
            const name = eq < 0 ? pair : pair.slice(0, eq)
            let decoded = name
            try {
              decoded = decodeURIComponent(name.replaceAll('+', ' '))
            } catch {
              // not valid percent-encoding: compared as it is
            }
            return decoded === 'token' ? `${name}=[redacted]` : pair
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
