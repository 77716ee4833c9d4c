import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import { OutputBudget } from '../services/output-budget.js'

/** How long a body waits for room before it is refused (it holds nothing while it waits). */
const BODY_WAIT_MS = 2000

/**
 * The bytes of request bodies one API process holds at once, for every caller together:
 * a body is counted by its Content-Length (a chunked one by the largest a body may be)
 * from before it is read until its answer has left. Each connection's body is bounded
 * (AIRLOCK_MAX_BODY_BYTES), but not their sum: 200 connections each sending 2 MB and
 * holding it took 320 MB. No tenant may hold more than half, so one tenant's bodies
 * cannot stop another's; past it, 503 AIRLOCK_ERR_BODIES_BUSY and the connection closed.
 */
export function limitBodies(app: FastifyInstance, capacityBytes: number, bodyLimitBytes: number): void {
  const budget = new OutputBudget(
    capacityBytes,
    BODY_WAIT_MS,
    0.5,
    () =>
      new AirlockError(
        'AIRLOCK_ERR_BODIES_BUSY',
        'the server is receiving as many request bytes as it may hold (AIRLOCK_BODY_BUFFER_BYTES); retry shortly',
        undefined,
        1,
      ),
  )
  app.addHook('preParsing', async (request, reply, payload) => {
    const length = Number(request.headers['content-length'])
    const chunked = request.headers['transfer-encoding'] !== undefined
    if (!chunked && !(length > 0)) return payload
    let hold: Awaited<ReturnType<OutputBudget['take']>>
    try {
      hold = await budget.take(request.tenantOrNone, chunked ? bodyLimitBytes : Math.min(length, bodyLimitBytes))
    } catch (err) {
      // The body is not read: the connection cannot be used for another request.
      reply.header('connection', 'close')
      throw err
    }
    reply.raw.once('close', () => hold.release())
    return payload
  })
}
