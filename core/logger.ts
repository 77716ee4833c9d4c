import { pino, type DestinationStream, type Logger } from 'pino'

/** Strips stream tokens from URLs before they are logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, '$1[redacted]')
}

/**
 * JSON logs for every process. Request lines carry the request id (and, once known, the
 * tenant and job id); nothing here ever logs bodies, so job source, stdin and output
 * never reach the logs, and keys and tokens are redacted from headers and URLs.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base,
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'], censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string; url?: string; hostname?: string; ip?: string }) => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        hostname: req.hostname,
        remoteAddress: req.ip,
      }),
      err: pino.stdSerializers.err,
    },
  }
  return destination ? pino(options, destination) : pino(options)
}
