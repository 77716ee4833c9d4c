import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import websocket from '@fastify/websocket'
import { Queue } from 'bullmq'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../core/config.js'
import { AirlockError, droppedByClient } from '../core/errors.js'
import { JobEventReader } from '../core/job-events.js'
import { JobStore } from '../core/job-store.js'
import type { Metrics } from '../core/metrics.js'
import { createRedis } from '../core/redis.js'
import { keepClockInSync } from '../core/clock.js'
import { QUEUE_NAME, redisKeys } from '../core/redis-keys.js'
import { tenantDefaults } from '../core/quotas.js'
import { WorkerRegistry } from '../core/worker-registry.js'
import { TenantStore } from '../core/tenant-store.js'
import { JobOutputReader } from '../core/job-output.js'
import { decorateTenant, keyTenants, registerAuth } from './plugins/auth.js'
import { FailedKeys } from './services/failed-keys.js'
import { boundJsonBodies } from './plugins/bounded-json.js'
import { boundUnreadBodies } from './plugins/unread-bodies.js'
import { TenantTurns } from './services/tenant-turns.js'
import { limitBodies } from './plugins/body-budget.js'
import { refuseUndecodableBodies, takeEmptyBodiesOfAnyType } from './plugins/body-encoding.js'
import { type ClaimConnection, limitConnections, trustedProxies } from './plugins/connection-limits.js'
import { closeQueryStrings, strictValidatorCompiler } from './plugins/strict-validator.js'
import { answerRaw } from './plugins/error-handler.js'
import { MAX_HEADERS, repeatedHeader } from './plugins/repeated-headers.js'
import { registerOpenApi } from './plugins/openapi.js'
import { registerConsole } from './plugins/console.js'
import { ROUTER_MAX_PARAM_LENGTH } from './schemas.js'
import {
  answerNodeLevelRequests,
  clientErrorHandler,
  frameworkErrors,
  registerErrorHandler,
} from './plugins/error-handler.js'
import adminRoutes from './routes/v1/admin/index.js'
import auditRoutes from './routes/v1/audit/index.js'
import healthRoutes from './routes/health.js'
import jobsRoutes from './routes/v1/jobs/index.js'
import batchRoutes from './routes/v1/jobs/batch.js'
import streamRoutes from './routes/v1/jobs/stream.js'
import artifactRoutes from './routes/v1/jobs/artifacts.js'
import runtimesRoutes from './routes/v1/runtimes/index.js'
import judge0Adapter from './adapters/judge0/index.js'
import { CountedIncomingMessage, refuseFinelyCutBodies } from './plugins/body-pieces.js'
import pistonAdapter from './adapters/piston/index.js'
import { EventHub } from './services/event-hub.js'
import { JobWaiter } from './services/job-waiter.js'
import { JobService } from './services/job-service.js'
import { OutputBudget } from './services/output-budget.js'
import { OutputWriter } from './services/output-writer.js'
import { StreamGate } from './services/stream-gate.js'
import { readQueueState } from './services/queue-state.js'
import { CloseCodes, DEFAULT_STREAM_LIMITS, type StreamLimits, type StreamSession } from './services/stream-session.js'
import { StreamTokens } from './services/stream-tokens.js'

export interface Services {
  config: Config
  redis: Redis
  /** Submissions' own connection: their reads, and each job's record with its queue entry. */
  submitRedis: Redis
  store: JobStore
  queue: Queue
  registry: WorkerRegistry
  waiter: JobWaiter
  events: JobEventReader
  hub: EventHub
  streamTokens: StreamTokens
  /** Key lookups that found nothing, per address group (made-up keys cost Redis a lookup each). */
  failedKeys: FailedKeys
  tenants: TenantStore
  /** The tenant a key (by its digest) stands for now; undefined once it is revoked. */
  keyTenant: (digest: string) => Promise<string | undefined>
  turns: TenantTurns
  streamLimits: StreamLimits
  /** Open stream sessions of this process, closed with a resumable code on shutdown. */
  streamSessions: Set<StreamSession>
  /** Caps on the streams one tenant and one address hold open. */
  streamGate: StreamGate
  /** Bytes of job output this process holds for all readers together. */
  budget: OutputBudget
  /** Sends job output (a job, its log, a stream's end) in pieces under the budget. */
  outputWriter: OutputWriter
  /** Submits, waits for and cancels jobs: the one path every API's jobs take. */
  jobService: JobService
  /** Counts an authenticated request's connection as its tenant's (false: the tenant holds its most). */
  claimConnection: ClaimConnection
  metrics: Metrics
}

declare module 'fastify' {
  interface FastifyInstance {
    services: Services
  }
}

export interface BuildAppOptions {
  config: Config
  logger: Logger
  metrics: Metrics
  streamLimits?: Partial<StreamLimits>
}

/** The one WebSocket route. */
const STREAM_ROUTE = '/v1/jobs/:id/stream'

/**
 * The API: external plugins (websocket, OpenAPI), then our services (Redis, queue,
 * store), then routes, one folder per resource. Connections are closed with the app.
 */
export async function buildApp({ config, logger, metrics, streamLimits }: BuildAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // A caller's x-request-id is used only if it is short and plain: it is on every log line.
    requestIdHeader: false,
    routerOptions: { maxParamLength: ROUTER_MAX_PARAM_LENGTH },
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(given) ? given : randomUUID()
    },
    trustProxy: trustedProxies(config.trustProxy),
    clientErrorHandler,
    frameworkErrors: frameworkErrors(metrics),
    // Slow clients are timed out whether or not they have a key: headers, the whole
    // request (a body trickled a byte a second), and idle keep-alive connections.
    keepAliveTimeout: config.keepAliveTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    http: {
      IncomingMessage: CountedIncomingMessage,
      headersTimeout: Math.min(config.headersTimeoutMs, config.requestTimeoutMs),
      connectionsCheckingInterval: 1000,
      // Node's own answer to a missing Host is a 400 without a body: the hook below gives the code.
      requireHostHeader: false,
    },
  }).withTypeProvider<TypeBoxTypeProvider>()
  const limits = { ...DEFAULT_STREAM_LIMITS, ...streamLimits }
  const connectionLimits = limitConnections(app.server, {
    maxConnections: config.maxConnections,
    maxPerAddress: config.maxConnectionsPerAddress,
    maxPerTenant: config.maxConnectionsPerTenant,
    trustProxy: config.trustProxy,
    upgradeTimeoutMs: config.headersTimeoutMs,
    slowReaderMs: limits.slowClientGraceMs,
    log: logger,
    metrics,
  })
  const claimConnection = connectionLimits.claim
  app.server.maxHeadersCount = MAX_HEADERS + 1
  answerNodeLevelRequests(app.server)
  app.setValidatorCompiler(strictValidatorCompiler)
  registerErrorHandler(app, metrics)
  // JSON only: a text body would otherwise reach validation and get a misleading 400 (an
  // empty one of any type, on a route that needs a body, gets the 400 an empty JSON body gets).
  app.removeContentTypeParser('text/plain')
  boundJsonBodies(app)
  takeEmptyBodiesOfAnyType(app)

  decorateTenant(app)
  refuseUndecodableBodies(app)
  limitBodies(app, config.bodyBufferBytes, config.bodyLimitBytes)
  refuseFinelyCutBodies(app)
  boundUnreadBodies(app, config.bodyLimitBytes)

  const keys = redisKeys(config.redisPrefix)
  const redis = createRedis(config.redisUrl, 'command')
  const subscriber = createRedis(config.redisUrl, 'blocking')
  const queueConnection = createRedis(config.redisUrl, 'command')
  const submitConnection = createRedis(config.redisUrl, 'command')
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'))
  subscriber.on('error', (err) => logger.warn({ err: err.message }, 'redis subscriber error'))
  queueConnection.on('error', (err) => logger.warn({ err: err.message }, 'redis queue error'))
  submitConnection.on('error', (err) => logger.warn({ err: err.message }, 'redis submit error'))
  await Promise.all([redis.connect(), subscriber.connect(), queueConnection.connect(), submitConnection.connect()])
  // What the API stores and compares with others' times goes by Redis's clock (core/clock.ts).
  const stopClockSync = await keepClockInSync(redis, (err) => logger.warn({ err }, "could not read Redis's clock"))

  const events = new JobEventReader(redis, keys)
  const budget = new OutputBudget(config.outputReadBufferBytes)
  const tenants = new TenantStore(redis, keys)
  const store = new JobStore(redis, keys, config.jobRetentionSeconds, tenantDefaults(config), config.artifactBytes)
  const base: Omit<Services, 'jobService'> = {
    config,
    redis,
    submitRedis: submitConnection,
    store,
    queue: new Queue(QUEUE_NAME, { connection: queueConnection, prefix: keys.bullPrefix }),
    registry: new WorkerRegistry(redis, keys),
    waiter: new JobWaiter(subscriber, keys.finishedChannel),
    events,
    hub: new EventHub(subscriber, keys),
    streamTokens: new StreamTokens(redis, keys, config.maxStreamTokensPerTenant),
    failedKeys: new FailedKeys(),
    tenants,
    keyTenant: keyTenants(config.tenantsByKey, tenants),
    turns: new TenantTurns(config.maxActiveRequestsPerTenant),
    streamLimits: limits,
    streamSessions: new Set(),
    streamGate: new StreamGate(config.maxStreamsPerTenant, config.maxStreamsPerAddress),
    budget,
    claimConnection,
    outputWriter: new OutputWriter(store, new JobOutputReader(redis, keys), events, budget, limits.slowClientGraceMs),
    metrics,
  }
  const services: Services = { ...base, jobService: new JobService(base) }
  app.decorate('services', services)
  metrics.addQueueGauges(() => readQueueState(services.queue))
  app.addHook('onClose', async () => {
    stopClockSync()
    // BullMQ waits for Redis to close cleanly; with Redis gone that would never happen.
    await Promise.race([services.queue.close().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())])
    subscriber.disconnect()
    queueConnection.disconnect()
    submitConnection.disconnect()
    redis.disconnect()
  })

  await registerOpenApi(app)
  // Before the auth hook: its own hooks must see every upgrade, or a refused one
  // would leave its socket open.
  await app.register(websocket, {
    // Clients send nothing on a stream (the session closes it at the first message), so
    // no message of theirs is ever in more than one frame: 16,383 empty fragments (ws's
    // default bound) made no message, no ping, and cost the loop (the tenth review).
    options: { maxPayload: 4096, maxFragments: 1 },
    // A client's bad frame (ws's WS_ERR_* codes) or a connection it dropped is the
    // client's doing, not a fault of ours: not logged as an error with its stack, one per
    // connection a hostile client opens. What our handler throws still is.
    errorHandler: (error, socket, request) => {
      const code = String((error as { code?: unknown }).code ?? '')
      if (code.startsWith('WS_ERR_') || droppedByClient(error))
        request.log.info({ code, reason: error.message }, 'stream client sent a bad frame or its connection closed')
      else request.log.error({ err: error }, 'stream failed')
      socket.terminate()
    },
    // Tell each watcher where it was, so it resumes on another replica without a gap.
    preClose: (done) => {
      services.waiter.releaseAll()
      for (const session of services.streamSessions)
        session.close(CloseCodes.RESTARTING, `server restarting; reconnect with ?from=${session.seq}`)
      for (const client of app.websocketServer.clients) client.close(CloseCodes.RESTARTING, 'server restarting')
      app.websocketServer.close(() => done())
    },
  })
  app.websocketServer.on('connection', (_ws: unknown, req: IncomingMessage) =>
    connectionLimits.becameWebSocket(req.socket as Socket),
  )
  // A handshake ws refuses (a bad Sec-WebSocket-Key or -Version) gets the API's shape,
  // not ws's text/html.
  app.websocketServer.on('wsClientError', (err: Error, socket: Socket) =>
    answerRaw(
      socket,
      400,
      'AIRLOCK_ERR_BAD_REQUEST',
      `WebSocket handshake refused: ${err.message}`,
      'Sec-WebSocket-Version: 13\r\n',
    ),
  )
  // @fastify/websocket hides WebSocket routes from the document; ours is part of the API.
  app.addHook('onRoute', (route) => {
    if (route.url === STREAM_ROUTE && route.schema) route.schema.hide = false
  })
  // Any other route asked for an upgrade would take it and close it at once, and the
  // socket would linger for ws's close timeout, past every stream cap: refused plainly.
  // A request without Host (HTTP/1.1 requires one) too, in the API's shape, and one that
  // says it is of a version this server does not speak (an "HTTP/2.0" request line was
  // served as HTTP/1.1, past the Host check).
  app.addHook('onRequest', async (request, reply) => {
    const { httpVersionMajor: major, httpVersionMinor: minor } = request.raw
    if (major !== 1) {
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_BAD_REQUEST', `HTTP/${major}.${minor} is not spoken here: HTTP/1.1 or 1.0`)
    }
    if (minor >= 1 && request.headers.host === undefined) {
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_BAD_REQUEST', 'an HTTP/1.1 request must have a Host header')
    }
    if (request.raw.rawHeaders.length > 2 * MAX_HEADERS) {
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_HEADERS_TOO_LARGE', `a request may send at most ${MAX_HEADERS} headers`)
    }
    const twice = repeatedHeader(request.raw.rawHeaders)
    if (twice) {
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_BAD_REQUEST', `the ${twice} header must be sent once`)
    }
    if (request.ws && request.routeOptions.url !== STREAM_ROUTE) {
      reply.header('connection', 'close')
      throw new AirlockError(
        'AIRLOCK_ERR_BAD_REQUEST',
        `only ${STREAM_ROUTE.replace(':id', '{id}')} is a WebSocket; ask this route without Upgrade`,
      )
    }
  })
  await app.register(healthRoutes)
  // The web console: static files at /console/, calling the same routes as every client.
  await registerConsole(app)
  // Every tenant route lives in one scope whose hook authenticates: it runs on the route
  // the router matched (the decoded path), so no spelling of a URL walks around it.
  await app.register(
    async (v1) => {
      closeQueryStrings(v1)
      registerAuth(v1, {
        tenantsByKey: config.tenantsByKey,
        streamTokens: services.streamTokens,
        tenants: services.tenants,
        failedKeys: services.failedKeys,
        claimConnection,
        turns: services.turns,
      })
      await v1.register(jobsRoutes, { prefix: '/jobs' })
      await v1.register(batchRoutes, { prefix: '/jobs' })
      await v1.register(streamRoutes, { prefix: '/jobs' })
      await v1.register(artifactRoutes, { prefix: '/jobs' })
      await v1.register(runtimesRoutes, { prefix: '/runtimes' })
      await v1.register(auditRoutes, { prefix: '/audit' })
    },
    { prefix: '/v1' },
  )
  // Drop-in APIs for Judge0's and Piston's clients: thin translations onto the same
  // jobs (services.jobService), each authenticating in its own scope as its clients can.
  await app.register(judge0Adapter, { prefix: '/judge0' })
  await app.register(pistonAdapter, { prefix: '/piston' })
  // Operator routes have their own credential (routes/v1/admin/index.ts).
  await app.register(
    async (admin) => {
      closeQueryStrings(admin)
      await admin.register(adminRoutes)
    },
    { prefix: '/v1/admin' },
  )
  return app
}
