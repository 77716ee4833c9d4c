import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AirlockError } from '../../../../core/errors.js'
import type { StoredEvent } from '../../../../core/job-events.js'
import { ownJob } from './own-job.js'
import { errorResponses } from '../../../schemas.js'
import { StreamSession } from '../../../services/stream-session.js'

const JobParams = Type.Object({ id: Type.String({ maxLength: 128 }) })
const MAX_LOG_EVENTS = 100_000

/** Live logs: a WebSocket per watcher, the whole log as text or NDJSON, and browser tokens. */
const streamRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store, events, hub, streamTokens, streamLimits, streamSessions, metrics } = app.services


  app.get(
    '/:id/stream',
    {
      websocket: true,
      schema: {
        summary: "Stream a job's output and status over a WebSocket",
        description:
          'Messages: {type:"log",stream,data,seq,ts}, {type:"status",status,seq,ts}, then {type:"end",job,seq,ts} and a normal close (1000). ' +
          '?from=<seq> resumes after that message. Close 4001: too slow, reconnect with from. Close 1012: server restarting, reconnect with from. ' +
          'Authenticate with the Authorization header, or with ?token= from POST /v1/jobs/:id/stream-tokens (browsers).',
        params: JobParams,
        querystring: Type.Object({
          // A string, parsed below: numeric coercion would quietly turn "1.5" into a seq.
          from: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'Resume after this seq' })),
          token: Type.Optional(Type.String({ maxLength: 128, description: 'Single-use stream token' })),
        }),
        response: errorResponses(400, 401, 404),
      },
      // Ownership is checked before the upgrade, so refusals are plain HTTP answers.
      preHandler: async (request) => {
        await ownJob(store, request.params.id, request.tenant)
      },
    },
    async (socket, request) => {
      const session = new StreamSession(socket, request.params.id, Number(request.query.from ?? 0), { store, reader: events, hub, log: request.log.child({ jobId: request.params.id }), limits: streamLimits, metrics })
      streamSessions.add(session)
      socket.once('close', () => streamSessions.delete(session))
      await session.start()
    },
  )

  app.post(
    '/:id/stream-tokens',
    {
      schema: {
        summary: "A single-use token to open the job's stream from a browser",
        params: JobParams,
        response: { 201: Type.Object({ token: Type.String(), expiresAt: Type.String({ format: 'date-time' }) }), ...errorResponses(401, 404, 503) },
      },
    },
    async (request, reply) => {
      await ownJob(store, request.params.id, request.tenant)
      return reply.status(201).send(await streamTokens.issue(request.tenant, request.params.id))
    },
  )

  app.get(
    '/:id/logs',
    {
      schema: {
        summary: "The job's whole log so far: text, or NDJSON events with Accept: application/x-ndjson",
        params: JobParams,
        response: { 200: Type.String(), ...errorResponses(401, 404, 503) },
      },
    },
    async (request, reply) => {
      const stored = await ownJob(store, request.params.id, request.tenant)
      const all: StoredEvent[] = []
      for (let cursor = 0; all.length < MAX_LOG_EVENTS; ) {
        const batch = await events.after(stored.id, cursor, 1000)
        if (batch.length === 0) break
        all.push(...batch)
        cursor = batch[batch.length - 1]!.seq
      }
      if ((request.headers.accept ?? '').includes('application/x-ndjson')) {
        const lines = all.map((e) => JSON.stringify(e.type === 'end' ? { ...e, job: stored.job } : e))
        return reply.type('application/x-ndjson').send(lines.length ? `${lines.join('\n')}\n` : '')
      }
      return reply.type('text/plain; charset=utf-8').send(all.map((e) => (e.type === 'log' ? e.data : '')).join(''))
    },
  )
}

export default streamRoutes
