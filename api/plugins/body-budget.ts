import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import { type BudgetHold, OutputBudget } from '../services/output-budget.js'

/** How long a body waits for room before it is refused (it holds nothing while it waits). */
const BODY_WAIT_MS = 2000

/** The most of the budget one tenant's bodies may hold, so it takes several tenants to fill it. */
const TENANT_SHARE = 0.25

/**
 * The bytes of request bodies one API process holds at once, for every caller together:
 * a body is counted by its Content-Length (a chunked one by the largest a body may be)
 * from before it is read until its answer has left. Each connection's body is bounded
 * (AIRLOCK_MAX_BODY_BYTES), but not their sum: 200 connections each sending 2 MB and
 * holding it took 320 MB. No tenant may hold more than a quarter, so one tenant's bodies
 * cannot stop another's; past it, 503 AIRLOCK_ERR_BODIES_BUSY and the connection closed.
 * Bodies no tenant sent (an operator's, or one on its way to a 404) take from a small
 * budget of their own: anonymous callers cannot use up the tenants' room.
 */
export function limitBodies(app: FastifyInstance, capacityBytes: number, bodyLimitBytes: number): void {
  const busy = () =>
    new AirlockError(
      'AIRLOCK_ERR_BODIES_BUSY',
      'the server is receiving as many request bytes as it may hold (AIRLOCK_BODY_BUFFER_BYTES); retry shortly',
      undefined,
      1,
    )
  const tenants = new OutputBudget(capacityBytes, BODY_WAIT_MS, TENANT_SHARE, busy)
  const anonymous = new OutputBudget(Math.min(capacityBytes, bodyLimitBytes * 2), BODY_WAIT_MS, 1, busy)
  app.addHook('preParsing', async (request, reply, payload) => {
    const length = Number(request.headers['content-length'])
    const chunked = request.headers['transfer-encoding'] !== undefined
    if (!chunked && !(length > 0)) return payload
    const tenant = request.tenantOrNone
    // Listened for before the wait: a client that leaves while its body waits for room
    // must not leave the room it is given taken for good.
    const res = reply.raw
    let hold: BudgetHold | undefined
    let gone = false
    const leave = () => {
      gone = true
      hold?.release()
    }
    res.once('close', leave)
    try {
      hold = await (tenant ? tenants : anonymous).take(
        tenant,
        chunked ? bodyLimitBytes : Math.min(length, bodyLimitBytes),
      )
    } catch (err) {
      res.off('close', leave)
      // The body is not read: the connection cannot be used for another request.
      reply.header('connection', 'close')
      throw err
    }
    if (gone) hold.release()
    return payload
  })
}
