import { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'

/** Pieces a body may come in before their size is looked at: a slow network's small reads fit. */
export const FREE_BODY_PIECES = 256
/** Bytes a body's pieces must carry on average once there are more than FREE_BODY_PIECES. */
export const MIN_BODY_PIECE_BYTES = 64

/** True when a body that came in `pieces` pieces of `bytes` in all is cut up too finely. Pure. */
export function tooFinelyCut(pieces: number, bytes: number): boolean {
  return pieces > FREE_BODY_PIECES && bytes < pieces * MIN_BODY_PIECE_BYTES
}

/**
 * A request whose body is counted as it comes. Node hands a body to JavaScript one piece
 * at a time (a chunk of a chunked body, or what one read of the socket brought), so its
 * cost is its count of pieces, not its bytes: a hostile review's 1 MB body sent as 1-byte
 * chunks took 4.7 s of the event loop and left 224 MB of pieces to collect, and keyless
 * 1-byte chunks to `/healthz` slowed every tenant's requests 60-300 times. A body cut
 * finer than any client cuts one (tooFinelyCut) is refused: Node reads no more of it, and
 * its reader is told (400 AIRLOCK_ERR_BAD_REQUEST), now or when it begins to read
 * (refuseFinelyCutBodies). Given to Node's server as its IncomingMessage.
 */
export class CountedIncomingMessage extends IncomingMessage {
  /** Why its body was refused, once it was. */
  refusal: AirlockError | undefined
  private pieces = 0
  private bytes = 0

  /** Bytes of its body that have come so far. */
  get received(): number {
    return this.bytes
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) return super.push(chunk, encoding)
    // false: Node's parser stops reading the socket.
    if (this.refusal) return false
    this.pieces++
    this.bytes += (chunk as { length: number }).length
    if (!tooFinelyCut(this.pieces, this.bytes)) return super.push(chunk, encoding)
    this.refuse(
      new AirlockError(
        'AIRLOCK_ERR_BAD_REQUEST',
        `the body came in ${this.pieces} pieces of ${Math.floor(this.bytes / this.pieces)} bytes on average; send it in larger pieces (with a Content-Length)`,
      ),
    )
    return false
  }

  /**
   * Stops reading its body, for `error`: what reads the body (fastify's parser) gets it
   * and answers with it; a body not yet being read is refused with it when it is.
   */
  refuse(error: AirlockError): void {
    if (this.refusal) return
    this.refusal = error
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }
}

/**
 * A body refused before anyone read it is refused to its route's reader: the last hook
 * before fastify reads a body (its own reader takes the error of one refused meanwhile).
 */
export function refuseFinelyCutBodies(app: FastifyInstance): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const { refusal } = request.raw as Partial<CountedIncomingMessage>
    if (refusal) throw refusal
    return payload
  })
}
