import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'
import { type BudgetHold, OutputBudget, type ShortWaiter } from '../services/output-budget.js'
import type { CountedIncomingMessage } from './body-pieces.js'
import { announcesBody } from './body-encoding.js'

/** The methods whose bodies fastify never reads (its own `bodyless` set, not exported). */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'TRACE'])

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

/** How long a tenant's body waits for room before others are asked to give theirs up (most bodies free theirs sooner). */
export const YIELD_WAIT_MS = 500
/** How long a body must have been arriving before it may be made to give its room up (one that comes at once never is). */
export const YIELD_AFTER_MS = 1000
/** Bodies arriving slower than this, on average since they began, may be made to give their room up. */
export const YIELD_BELOW_BYTES_PER_S = 64 * 1024

/** A tenant's body on its way in, and the room it holds. */
export interface Arriving {
  tenant: string
  since: number
  /** Bytes of it that have come. */
  received: () => number
  /** Stops reading it and gives its room back: it is answered 503 and its connection closed. */
  yieldRoom: () => void
}

/**
 * Which body gives its room up to `waiter`'s body of `bytes`: one that has been arriving
 * for YIELD_AFTER_MS at under YIELD_BELOW_BYTES_PER_S, of a tenant that holds more than
 * the waiter will with its body (so two tenants never take turns cutting each other's),
 * the tenant holding the most first, its slowest body first. Else, whether one may do
 * later (one too young, or fast now). Pure.
 */
export function bodyToYield(
  bodies: Iterable<Arriving>,
  heldBy: (tenant: string) => number,
  waiter: string,
  bytes: number,
  now: number,
): { body: Arriving } | { later: boolean } {
  const after = heldBy(waiter) + bytes
  const rate = (body: Arriving) => body.received() / Math.max(0.001, (now - body.since) / 1000)
  let best: Arriving | undefined
  let later = false
  for (const body of bodies) {
    if (body.tenant === waiter || heldBy(body.tenant) <= after) continue
    if (now - body.since < YIELD_AFTER_MS || rate(body) >= YIELD_BELOW_BYTES_PER_S) {
      later = true
      continue
    }
    const [held, most] = [heldBy(body.tenant), best ? heldBy(best.tenant) : -1]
    if (held > most || (held === most && rate(body) < rate(best!))) best = body
  }
  return best ? { body: best } : { later }
}

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
  const arriving = new Set<Arriving>()
  /**
   * Shares alone let four tenants fill the room: 32 bodies trickled at 100 bytes a second
   * (3 KB/s in all) held it until the request timeout, and every other tenant's body was
   * 503 (the ninth review). So a tenant whose body has waited YIELD_WAIT_MS for room the
   * process lacks takes it from slow bodies of tenants holding more (bodyToYield), until
   * its body fits, it stops waiting (its client gone too), or none will do. Asking at
   * once let a tenant that sent headers and hung up cut every other tenant's uploads
   * (the tenth review).
   */
  const yieldFor = (waiter: string, bytes: number, asking: ShortWaiter) => {
    // The room a body gives up goes to the body that asked, not to the next in line (it
    // could be the cut tenant's own next body).
    asking.first()
    while (asking.waits() && bytes > capacityBytes - tenants.inUse) {
      const pick = bodyToYield(arriving, (tenant) => tenants.heldBy(tenant), waiter, bytes, performance.now())
      if ('later' in pick) {
        if (pick.later) setTimeout(() => yieldFor(waiter, bytes, asking), YIELD_WAIT_MS / 2).unref()
        return
      }
      pick.body.yieldRoom()
    }
  }
  const tenants = new OutputBudget(capacityBytes, BODY_WAIT_MS, TENANT_SHARE, busy, {
    firstFit: true,
    onShort: (waiter, bytes, asking) => setTimeout(() => yieldFor(waiter, bytes, asking), YIELD_WAIT_MS).unref(),
  })
  const small = () => new OutputBudget(Math.min(capacityBytes, bodyLimitBytes * 2), BODY_WAIT_MS, 1, busy)
  const [operators, anonymous] = [small(), small()]
  app.addHook('preParsing', async (request, reply, payload) => {
    if (!announcesBody(request.headers)) return payload
    const length = Number(request.headers['content-length'])
    const chunked = request.headers['transfer-encoding'] !== undefined
    if (request.is404) {
      // The error handler answers a request without a route as it answers any (404 or
      // 405); the body left unread, the connection cannot carry another request.
      reply.header('connection', 'close')
      throw new AirlockError('AIRLOCK_ERR_ROUTE_NOT_FOUND', 'no route')
    }
    // fastify never reads a GET's or HEAD's body, nor an upgrade's (the socket is a
    // WebSocket's next): room held for it was held for nothing, and an upgrade's answer
    // closes with its stream, so 8 streams announcing 2 MB each held their tenant's whole
    // share for as long as their jobs ran (found by a review of this plugin).
    if (BODYLESS_METHODS.has(request.method) || request.ws) return payload
    const tenant = request.tenantOrNone
    // Listened for before the wait: a client that leaves while its body waits for room
    // must not leave the room it is given taken for good.
    const res = reply.raw
    let hold: BudgetHold | undefined
    let gone = false
    // A client gone while its body waits stops waiting: it would hold its place in line, and ask others to yield.
    // Told only while it waits: an abort makes a DOMException and an event, ~3% of a submit's CPU.
    let waiting: AbortController | undefined = new AbortController()
    const leave = () => {
      gone = true
      hold?.release()
      waiting?.abort()
    }
    // Gone before this hook (while its key was looked up): its close has been and gone.
    if (res.destroyed || request.raw.destroyed) leave()
    else res.once('close', leave)
    const bytes = chunked ? bodyLimitBytes : Math.min(length, bodyLimitBytes)
    try {
      hold = await (tenant ? tenants : request.operator ? operators : anonymous).take(
        tenant,
        bytes,
        false,
        waiting.signal,
      )
      waiting = undefined
    } catch (err) {
      res.off('close', leave)
      // The body is not read: the connection cannot be used for another request.
      reply.header('connection', 'close')
      throw err
    }
    if (gone) hold.release()
    // A body being read as it comes can be told to stop.
    else if (tenant) {
      const raw = request.raw as Partial<CountedIncomingMessage>
      const body: Arriving = {
        tenant,
        since: performance.now(),
        received: () => raw.received ?? 0,
        yieldRoom: () => {
          arriving.delete(body)
          reply.header('connection', 'close')
          const refusal = new AirlockError(
            'AIRLOCK_ERR_BODIES_BUSY',
            "this body gave its room up to another tenant's: the server holds as many request bytes as it may (AIRLOCK_BODY_BUFFER_BYTES) and this tenant held the most; retry shortly",
            undefined,
            1,
          )
          raw.refuse?.(refusal)
          hold?.release()
        },
      }
      arriving.add(body)
      const arrived = () => arriving.delete(body)
      request.raw.once('end', arrived)
      res.once('close', arrived)
    }
    // A waiting request held the room for as long as it waited (up to AIRLOCK_MAX_WAIT_MS):
    // a few tenants' waits left none for anyone's bodies (found by the eighth review).
    request.letGoOfBody = () => {
      hold?.release()
      request.body = undefined
    }
    return payload
  })
}
