import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ownJob } from './own-job.js'
import { errorResponses, JobParams } from '../../../schemas.js'
import { STREAM_SECURITY } from '../../../plugins/openapi.js'
import type { QueryCredentialsConfig } from '../../../plugins/strict-validator.js'
import { StreamSession } from '../../../services/stream-session.js'
import { handshakeRefusal, upgradeRequired } from '../../../services/stream-gate.js'
import { invalidStreamToken } from '../../../services/stream-tokens.js'

/** Live logs: a WebSocket per watcher, the whole log as text or NDJSON, and browser tokens. */
const streamRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const {
    store,
    events,
    hub,
    streamTokens,
    streamLimits,
    streamSessions,
    metrics,
    streamGate,
    outputWriter,
    budget,
    keyTenant,
  } = app.services

  app.get(
    '/:id/stream',
    {
      websocket: true,
      schema: {
        operationId: 'streamJob',
        tags: ['jobs'],
        summary: "Stream a job's output and status over a WebSocket",
        description:
          'Messages: {type:"log",stream,data,seq,ts}, {type:"status",status,seq,ts}, then {type:"end",job,seq,ts} and a normal close (1000). ' +
          '?from=<seq> resumes after that message. Close 4001: too slow, reconnect with from. Close 1012: server restarting, reconnect with from. ' +
          'Close 4401: the key the stream was opened with (or the key behind its token) was revoked. ' +
          'Authenticate with the Authorization header, or with ?token= from POST /v1/jobs/:id/stream-tokens (browsers).',
        params: JobParams,
        querystring: Type.Object({
          // A string, parsed below: numeric coercion would quietly turn "1.5" into a seq.
          from: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'Resume after this seq' })),
          // ?token= is a credential (the streamToken security scheme), read by the auth hook: `config` below.
        }),
        security: STREAM_SECURITY,
        response: errorResponses(400, 401, 404, 426, 429),
      },
      config: { queryCredentials: ['token'] } satisfies QueryCredentialsConfig,
      // Ownership and the stream caps are checked before the upgrade, so refusals are
      // plain HTTP answers.
      preHandler: async (request, reply) => {
        await ownJob(store, request.params.id, request.tenant)
        // Node's verdict, not the Upgrade header alone: a request with Upgrade but no
        // Connection: Upgrade is plain HTTP, and would hold a stream slot for nothing.
        if (!request.ws) throw upgradeRequired(reply)
        const refusal = handshakeRefusal(reply)
        if (refusal) throw refusal
        streamGate.enter(request.tenant, request.ip, request.raw.socket)
        // A browser's single-use token is used up only now, when nothing is left to refuse it.
        const token = request.streamToken
        if (token !== undefined && !(await streamTokens.redeem(token, request.params.id))) throw invalidStreamToken()
        // A stream lasts as long as its job: its slot, not a turn, is what it holds.
        request.leaveTurn()
      },
    },
    async (socket, request) => {
      const session = new StreamSession(socket, request.params.id, Number(request.query.from ?? 0), {
        store,
        reader: events,
        hub,
        log: request.log.child({ jobId: request.params.id }),
        limits: streamLimits,
        metrics,
        writer: outputWriter,
        budget,
        tenant: request.tenant,
        keyStands: async () => (await keyTenant(request.keyDigest)) === request.tenant,
      })
      streamSessions.add(session)
      socket.once('close', () => streamSessions.delete(session))
      await session.start()
    },
  )

  app.post(
    '/:id/stream-tokens',
    {
      schema: {
        operationId: 'createStreamToken',
        tags: ['jobs'],
        summary: "A single-use token to open the job's stream from a browser",
        params: JobParams,
        response: {
          201: Type.Object(
            { token: Type.String(), expiresAt: Type.String({ format: 'date-time' }) },
            { title: 'StreamToken' },
          ),
          ...errorResponses(401, 404, 429, 503),
        },
      },
    },
    async (request, reply) => {
      await ownJob(store, request.params.id, request.tenant)
      return reply.status(201).send(await streamTokens.issue(request.tenant, request.params.id, request.keyDigest))
    },
  )

  app.get(
    '/:id/logs',
    {
      schema: {
        operationId: 'getJobLogs',
        tags: ['jobs'],
        summary: "The job's whole log so far: text, or NDJSON events with Accept: application/x-ndjson",
        params: JobParams,
        response: {
          200: {
            description:
              "The log as text, or as NDJSON events (the stream's messages) with Accept: application/x-ndjson",
            content: { 'text/plain': { schema: Type.String() }, 'application/x-ndjson': { schema: Type.String() } },
          },
          ...errorResponses(401, 404, 503),
        },
      },
    },
    async (request, reply) => {
      const view = await ownJob(store, request.params.id, request.tenant)
      // Sent as it is read, a piece at a time, under the process's output budget.
      if ((request.headers.accept ?? '').includes('application/x-ndjson'))
        return outputWriter.send(reply, 200, 'application/x-ndjson', outputWriter.ndjson(view))
      return outputWriter.send(reply, 200, 'text/plain; charset=utf-8', outputWriter.logText(view))
    },
  )
}

export default streamRoutes
