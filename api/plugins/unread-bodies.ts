import { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { announcesBody } from './body-encoding.js'

/** How long the rest of a body no route read may keep coming after the answer left. */
const UNREAD_BODY_GRACE_MS = 1000
/** How often what came is looked at meanwhile. */
const UNREAD_BODY_CHECK_MS = 10

/**
 * A request answered before its body was read (a route that takes none, such as
 * `GET /healthz` with a Content-Length; a 401, 404 or 415): Node reads and throws away
 * the rest so the connection can carry the next request, however long it is and until
 * the request timeout. Found by a hostile review: 8 keyless connections sent 5.7 GB to
 * `/healthz` in 8 s and took 11.9 s of the server's CPU. The rest of a Content-Length
 * body may be at most the body limit and come within a second; past either, the
 * connection is cut. A chunked body's rest is not waited for at all.
 */
export function boundUnreadBodies(app: FastifyInstance, bodyLimitBytes: number): void {
  // And a connection carries at most one body nothing read: kept open, a keyless client
  // could send body after body just under the limit, each thrown away at the server's cost
  // (found by review 25: 2 MiB bodies to /healthz, one after another on 8 connections).
  app.addHook('onSend', async (request, reply, payload) => {
    const req = request.raw
    // Not read: still coming, or come whole and left in the request's buffer (a GET's body
    // that fit in the first packets; found by review 25's live probe, 60 KB bodies went on).
    const unread = !req.complete || !req.readableDidRead
    if (unread && !(req as { upgrade?: boolean }).upgrade && announcesBody(req.headers))
      reply.header('connection', 'close')
    return payload
  })
  app.addHook('onResponse', async (request) => {
    const req = request.raw
    const socket = req.socket
    // An upgraded connection (a WebSocket) is no longer HTTP's: what comes on it is not a body.
    if (req.complete || (req as { upgrade?: boolean }).upgrade || !(socket instanceof Socket) || socket.destroyed)
      return
    // A chunked body's rest costs the parser a call into JavaScript per chunk however it is
    // thrown away (1-byte chunks: ~0.75 us a byte on the wire, found by the seventh review):
    // the connection is cut as soon as the answer has gone.
    if (req.headers['transfer-encoding'] !== undefined) {
      socket.destroy()
      return
    }
    // Node's parser throws the rest away itself (no 'data' events): the socket's count says how much came.
    const from = socket.bytesRead
    const started = performance.now()
    const watch = setInterval(() => {
      if (req.complete || socket.destroyed) return clearInterval(watch)
      if (socket.bytesRead - from > bodyLimitBytes || performance.now() - started > UNREAD_BODY_GRACE_MS) {
        clearInterval(watch)
        socket.destroy()
      }
    }, UNREAD_BODY_CHECK_MS)
    watch.unref()
  })
}
