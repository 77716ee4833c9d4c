import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import { type BudgetHold, OutputBudget } from '../services/output-budget.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Gives the room its body takes back and lets go of the body, for a request that is
     * then held (a wait for its job): what it holds is no longer its body.
     */
    letGoOfBody: () => void
  }
}

/** How long a body waits for room before it is refused (it holds nothing while it waits). */
const BODY_WAIT_MS = 2000

/** The most of the budget one tenant's bodies may hold, so it takes several tenants to fill it. */
const TENANT_SHARE = 0.25

/**
 * The bytes of request bodies one API process holds at once, for every caller together:
 * a body is counted by its Content-Length (a chunked one by the largest a body may be)
 * from before it is read until its answer has left, or until the request is held for
 * its job (then the body is let go of). Each connection's body is bounded
 * (AIRLOCK_MAX_BODY_BYTES), but not their sum: 200 connections each sending 2 MB and
 * holding it took 320 MB. No tenant may hold more than a quarter, so one tenant's bodies
 * cannot stop another's; past it, 503 AIRLOCK_ERR_BODIES_BUSY and the connection closed.
 * An operator's bodies (the admin API's) take from a small budget of their own, and so
 * do any others no tenant sent: neither tenants nor anonymous callers can use up the
 * operator's room. A body on its way to no route (a 404 or 405) is not read at all: it
 * is answered at once and its connection closed, so a caller without a key makes the
 * server neither hold nor parse anything.
 */
export function limitBodies(app: FastifyInstance, capacityBytes: number, bodyLimitBytes: number): void {
  app.decorateRequest('letGoOfBody', () => undefined)
  const busy = () =>
    new AirlockError(
      'AIRLOCK_ERR_BODIES_BUSY',
      'the server is receiving as many request bytes as it may hold (AIRLOCK_BODY_BUFFER_BYTES); retry shortly',
      undefined,
      1,
    )
  const tenants = new OutputBudget(capacityBytes, BODY_WAIT_MS, TENANT_SHARE, busy)
  const small = () => new OutputBudget(Math.min(capacityBytes, bodyLimitBytes * 2), BODY_WAIT_MS, 1, busy)
  const [operators, anonymous] = [small(), small()]
  app.addHook('preParsing', async (request, reply, payload) => {
    const length = Number(request.headers['content-length'])
    const chunked = request.headers['transfer-encoding'] !== undefined
    if (!chunked && !(length > 0)) return payload
    if (request.is404) {
      // The error handler answers a request without a route as it answers any (404 or
      // 405); the body left unread, the connection cannot carry another request.
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_ROUTE_NOT_FOUND', 'no route')
    }
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
      hold = await (tenant ? tenants : request.operator ? operators : anonymous).take(
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
    // A waiting request held the room for as long as it waited (up to AIRLOCK_MAX_WAIT_MS):
    // a few tenants' waits left none for anyone's bodies (found by the eighth review).
    request.letGoOfBody = () => {
      hold?.release()
      request.body = undefined
    }
    return payload
  })
}
