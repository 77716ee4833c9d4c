import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AirlockError, droppedByClient, ErrorCodes, isAirlockError, type ErrorCode } from '../../core/errors.js'
import type { Metrics } from '../../core/metrics.js'
import { isRedisUnreachable } from '../../core/redis.js'
import type { ErrorResponse } from '../schemas.js'

// fastify's own errors for bad requests -> our catalogue.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'AIRLOCK_ERR_MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'AIRLOCK_ERR_MALFORMED_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'AIRLOCK_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'AIRLOCK_ERR_VALIDATION',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_VALIDATION: 'AIRLOCK_ERR_VALIDATION',
  FST_ERR_BAD_URL: 'AIRLOCK_ERR_VALIDATION',
  FST_ERR_INVALID_URL: 'AIRLOCK_ERR_VALIDATION',
  FST_ERR_MAX_PARAM_LENGTH: 'AIRLOCK_ERR_URI_TOO_LONG',
  FST_ERR_ASYNC_CONSTRAINT: 'AIRLOCK_ERR_VALIDATION',
}

// The code of a plugin's own 4xx, by its status.
const CODES_BY_STATUS: Partial<Record<number, ErrorCode>> = {
  403: 'AIRLOCK_ERR_FORBIDDEN',
  404: 'AIRLOCK_ERR_NOT_FOUND',
  405: 'AIRLOCK_ERR_METHOD_NOT_ALLOWED',
  408: 'AIRLOCK_ERR_REQUEST_TIMEOUT',
  413: 'AIRLOCK_ERR_BODY_TOO_LARGE',
  414: 'AIRLOCK_ERR_URI_TOO_LONG',
  415: 'AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE',
  431: 'AIRLOCK_ERR_HEADERS_TOO_LARGE',
}

/** A schema's complaints about part of a request (`where`: body, querystring, ...) as the one validation error. */
export function validationFailure(
  errors: readonly { instancePath?: string; message?: string }[],
  where: string,
): AirlockError {
  const details = errors.map((v) => ({ path: v.instancePath || '/', message: v.message ?? 'invalid' }))
  return new AirlockError(
    'AIRLOCK_ERR_VALIDATION',
    `invalid ${where}: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`.slice(0, 2000),
    details.slice(0, 20),
  )
}

export function toErrorResponse(err: FastifyError | Error): { status: number; body: ErrorResponse; log: boolean } {
  if (isAirlockError(err)) {
    return {
      status: err.statusCode,
      body: {
        statusCode: err.statusCode,
        code: err.code,
        message: err.message,
        ...(err.details ? { details: err.details } : {}),
      },
      log: err.statusCode >= 500,
    }
  }
  const f = err as FastifyError
  if (f.validation) return toErrorResponse(validationFailure(f.validation, f.validationContext ?? 'request'))
  const mapped = f.code ? FASTIFY_CODES[f.code] : undefined
  if (mapped) {
    const status = ErrorCodes[mapped]
    return { status, body: { statusCode: status, code: mapped, message: f.message }, log: false }
  }
  // noeviction: a full Redis refuses writes; the request changed nothing and may be retried.
  if (/^OOM /.test(err.message)) {
    return {
      status: 503,
      body: {
        statusCode: 503,
        code: 'AIRLOCK_ERR_STORE_FULL',
        message: 'the job store is full; nothing was accepted; retry later',
      },
      log: true,
    }
  }
  if (isRedisUnreachable(err)) {
    return {
      status: 503,
      body: {
        statusCode: 503,
        code: 'AIRLOCK_ERR_STORE_UNAVAILABLE',
        message: 'the job store is unavailable; retry shortly',
      },
      log: true,
    }
  }
  // Any other client error a plugin raised (a static file's 403 for a dotfile or a
  // directory) keeps its status, under the code that says it, else a generic one.
  if (typeof f.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500) {
    const code = CODES_BY_STATUS[f.statusCode] ?? 'AIRLOCK_ERR_BAD_REQUEST'
    return { status: f.statusCode, body: { statusCode: f.statusCode, code, message: f.message }, log: false }
  }
  return { status: 500, body: { statusCode: 500, code: 'AIRLOCK_ERR_INTERNAL', message: 'internal error' }, log: true }
}

/**
 * Requests Node's HTTP parser rejects (oversized headers, garbage) never reach fastify's
 * handlers; they still get our error shape and code.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (droppedByClient(err) || socket.destroyed) return
  const [status, code, message]: [number, ErrorCode, string] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'AIRLOCK_ERR_HEADERS_TOO_LARGE', 'request headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'AIRLOCK_ERR_REQUEST_TIMEOUT', 'the request took too long to arrive']
        : [400, 'AIRLOCK_ERR_BAD_REQUEST', 'the HTTP request could not be parsed']
  answerRaw(socket, status, code, message)
}

/** An error answer written straight to a socket Node has not given to fastify; the connection is closed. */
export function answerRaw(socket: Duplex, status: number, code: ErrorCode, message: string, headers = ''): void {
  const body = JSON.stringify({ statusCode: status, code, message })
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n${headers}\r\n${body}`,
    )
  }
  socket.destroy()
}

const CONTINUED = Symbol('continued')

/**
 * Tells a client that sent `Expect: 100-continue` to send its body: called once its
 * request has authenticated, so a keyless caller is never asked for one.
 */
export function continueExpected(req: IncomingMessage, res: ServerResponse): void {
  const marked = res as ServerResponse & { [CONTINUED]?: true }
  if (marked[CONTINUED] || res.headersSent || !/^\s*100-continue\s*$/i.test(req.headers.expect ?? '')) return
  marked[CONTINUED] = true
  res.writeContinue()
}

/**
 * Requests Node answers itself, before fastify sees them, get the API's error shape
 * too: CONNECT (Node would close the socket without a word) and an Expect other than
 * 100-continue (Node's 417 has no body). Node also says 100 Continue to every request
 * that expects it, before any hook has run: here such a request is handled as any
 * other, and continueExpected says it once the request has authenticated (a client
 * never told sends its body after a wait of its own).
 */
export function answerNodeLevelRequests(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => server.emit('request', req, res))
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    req.resume()
    answerRaw(socket, 405, 'AIRLOCK_ERR_METHOD_NOT_ALLOWED', 'CONNECT is not served here')
  })
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({
      statusCode: 417,
      code: 'AIRLOCK_ERR_EXPECTATION_FAILED' satisfies ErrorCode,
      message: `Expect: ${String(req.headers.expect).slice(0, 64)} is not supported; only 100-continue is`,
    })
    res.writeHead(417, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    })
    res.end(body)
  })
}

/**
 * Errors the router raises before any route runs (bad URL encoding, over-long path
 * parameters) bypass the error handler; this gives them the same shape.
 */
export function frameworkErrors(metrics: Metrics) {
  return (err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void => {
    const { status, body } = toErrorResponse(err)
    metrics.rejectedRequests.inc({ code: body.code })
    void reply.code(status).send(body)
  }
}

/** For a route with a pattern: its scope's 405 for a path written out that another route has. */
const writtenOutAnswers = new WeakMap<
  object,
  (request: FastifyRequest, reply: FastifyReply) => FastifyReply | undefined
>()

/**
 * A 404 for a path of `scope` no route has, or a 405 (with Allow) for a method it does
 * not take, whatever else the request got wrong (a QUERY with no Content-Type fails body
 * parsing before this): the answerer for the scope's not-found handler, `shape` giving
 * the scope's error body. Registered inside a scope, it runs after the scope's hooks
 * (authentication), as its routes do. `where` names the API in the message.
 */
export function notFoundAnswerer(
  scope: FastifyInstance,
  metrics: Metrics,
  shape: (err: AirlockError) => unknown,
  where = '',
): (request: FastifyRequest, reply: FastifyReply) => FastifyReply {
  const routes = new RouteMethods()
  scope.addHook('onRoute', (route) => {
    routes.add(route.url, route.method)
    // `GET /v1/jobs/batch` is routed to `GET /v1/jobs/:id` (the router tries a pattern when
    // the path written out takes other methods): the path is a route's own, so a method
    // it does not take is a 405 for it too, not a 404 for a job named "batch".
    // A route of a nested scope (Judge0's) is seen by every scope's answerer around it, the
    // innermost last: its answer, in its own shape, is the one given.
    if (!route.url.includes('/:')) return
    const first = !writtenOutAnswers.has(route)
    let sibling: ReturnType<RouteMethods['writtenOut']> | undefined
    writtenOutAnswers.set(route, (request, reply) => {
      sibling ??= routes.writtenOut(route.url)
      const path = sibling(request.params as Record<string, string>)
      return path === undefined ? undefined : answer(request, reply, path)
    })
    if (first)
      route.preValidation = [
        ...[route.preValidation ?? []].flat(),
        async (request: FastifyRequest, reply: FastifyReply) => writtenOutAnswers.get(route)?.(request, reply),
      ]
  })
  const answer = (request: FastifyRequest, reply: FastifyReply, path: string) => {
    // A route that takes this method but found nothing (a static file that is not there) is a 404.
    const allowed = routes.allowed(path).includes(request.method) ? [] : routes.allowed(path)
    const err =
      allowed.length > 0
        ? new AirlockError(
            'AIRLOCK_ERR_METHOD_NOT_ALLOWED',
            `${path} does not take ${request.method}; it takes ${allowed.join(', ')}`,
          )
        : new AirlockError('AIRLOCK_ERR_ROUTE_NOT_FOUND', `no route ${request.method} ${path}${where}`)
    metrics.rejectedRequests.inc({ code: err.code })
    if (allowed.length > 0) reply.header('allow', allowed.join(', '))
    return reply.status(err.statusCode).send(shape(err))
  }
  return (request, reply) => answer(request, reply, request.url.split('?')[0]!)
}

/** One error handler: 4xx carry the message and code; 5xx are logged and answered generically. */
export function registerErrorHandler(app: FastifyInstance, metrics: Metrics): void {
  const notFound = notFoundAnswerer(app, metrics, (err) => ({
    statusCode: err.statusCode,
    code: err.code,
    message: err.message,
  }))
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (request.is404) return notFound(request, reply)
    const { status, body } = prepareErrorReply(err, request, reply, metrics)
    return reply.status(status).send(body)
  })
  app.setNotFoundHandler(notFound)
}

const STORE_DOWN = new Set<string>(['AIRLOCK_ERR_STORE_UNAVAILABLE', 'AIRLOCK_ERR_STORE_FULL'])

/** Lines of a kind a flood repeats: one a second per code, saying how many it stands for. */
class FloodLog {
  private readonly last = new Map<string, { at: number; left: number }>()

  /** The count left out since the last line of `code`, if one is to be written now; else undefined. */
  take(code: string): number | undefined {
    const now = performance.now()
    const seen = this.last.get(code)
    if (seen && now - seen.at < 1000) {
      seen.left++
      return undefined
    }
    this.last.set(code, { at: now, left: 0 })
    return seen?.left ?? 0
  }
}

const floodLog = new FloodLog()

/**
 * What every error handler (the app's, and the Judge0 and Piston adapters', which only
 * answer in another shape) does before it answers: the one mapping to a status and
 * code, the metric, the log line for a 5xx, and the headers (Retry-After; a caller
 * that failed authentication gets no second try on the same connection: it cannot keep
 * a socket, and a body it trickles, open on an unauthenticated request).
 */
export function prepareErrorReply(
  err: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
  metrics: Metrics,
): { status: number; body: ErrorResponse } {
  const { status, body, log } = toErrorResponse(err)
  metrics.rejectedRequests.inc({ code: body.code })
  // A server at one of its bounds (busy, too many) refuses on purpose, each time a
  // flood asks: a warning with its code, not an error with a stack per request. And while
  // the store is down, every request fails alike, at its callers' rate (anyone's, with a
  // made-up key): its code is logged once a second, with how many were left out.
  const atBound = body.code.endsWith('_BUSY') || body.code.startsWith('AIRLOCK_ERR_TOO_MANY_')
  if (log && (atBound || STORE_DOWN.has(body.code))) {
    // undefined: counted into the next line of its code.
    const alike = floodLog.take(body.code)
    if (alike !== undefined && atBound)
      request.log.warn({ code: body.code, reason: body.message, alike }, 'request refused: the server is at a bound')
    else if (alike !== undefined) request.log.error({ err, alike }, 'request failed: the store is unavailable')
  } else if (log) request.log.error({ err }, 'request failed')
  if (status === 503) reply.header('retry-after', '1')
  if (isAirlockError(err) && err.retryAfterSeconds !== undefined)
    reply.header('retry-after', String(err.retryAfterSeconds))
  if (status === 401) reply.header('connection', 'close')
  return { status, body }
}

/** Every route's path pattern and methods, to tell a path with other methods (405) from no path (404). */
export class RouteMethods {
  private readonly patterns = new Map<string, { re: RegExp; methods: Set<string> }>()

  add(url: string, method: string | string[]): void {
    let entry = this.patterns.get(url)
    if (!entry) {
      // fastify's syntax: `:name` is one segment, `*` the rest of the path.
      const source = url
        .split('/')
        .map((segment) =>
          segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
        )
        .join('/')
      entry = { re: new RegExp(`^${source}$`), methods: new Set() }
      this.patterns.set(url, entry)
    }
    for (const m of Array.isArray(method) ? method : [method]) entry.methods.add(m.toUpperCase())
  }

  /**
   * For a route's `pattern`, a check of the path it matched (by its `params`): the path
   * when it is another route's written out, with no pattern in it (`/v1/jobs/:id` with id
   * `batch` is `/v1/jobs/batch`), else undefined. Made on first use, once every route is
   * known: most patterns have no such sibling and cost their requests nothing.
   */
  writtenOut(pattern: string): (params: Record<string, string>) => string | undefined {
    const re = this.patterns.get(pattern)?.re
    const siblings = new Set(
      [...this.patterns.keys()].filter((url) => url !== pattern && !/[:*]/.test(url) && re?.test(url)),
    )
    if (siblings.size === 0) return () => undefined
    return (params) => {
      const path = pattern.replace(/:(\w+)/g, (_, name: string) => params[name] ?? '')
      return siblings.has(path) ? path : undefined
    }
  }

  /**
   * The methods some route takes at `path`, sorted; empty when no route has the path. A
   * route written as exactly this path speaks for it alone (`/v1/jobs/batch` is POST,
   * whatever `/v1/jobs/:id` takes), as the document lists it.
   */
  allowed(path: string): string[] {
    const exact = this.patterns.get(path)
    if (exact) return [...exact.methods].sort()
    const methods = new Set<string>()
    for (const { re, methods: m } of this.patterns.values()) if (re.test(path)) for (const x of m) methods.add(x)
    return [...methods].sort()
  }
}
