import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'

/** The request announces a body: chunked, or a Content-Length above 0. */
export function announcesBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || Number(headers['content-length']) > 0
}

/** Charsets whose bytes read as UTF-8 unchanged: the only ones our parsers decode. */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii'])

/**
 * The charset a Content-Type names, lower-cased; undefined when it names none, and
 * `repeated` when it names more than one (the first or the last could be the one a proxy
 * on the way read). Pure.
 */
export function declaredCharset(contentType: string | undefined): string | undefined {
  // Most name no parameter at all: no regex for them (it ran for every request with a body).
  if (contentType === undefined || !contentType.includes(';')) return undefined
  const all = [...contentType.matchAll(/;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/gi)]
  if (all.length > 1) return 'repeated'
  const m = all[0]
  return m ? (m[1] ?? m[2] ?? '').toLowerCase() : undefined
}

/**
 * Bodies are read as they come, as UTF-8 (JSON's only interchange encoding, RFC 8259
 * §8.1): a body that says it is in another charset, or compressed (Content-Encoding:
 * gzip, br, ...) or in a transfer coding besides chunked, would be read as something its
 * sender did not write. Each is refused
 * with 415 (RFC 9110 §15.5.16) before a byte of the body is read, whatever the route.
 */
export function refuseUndecodableBodies(app: FastifyInstance): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const { headers } = request
    if (!announcesBody(headers)) return payload
    // Node's parser reads a body whose last coding is chunked as chunked and ignores the
    // rest (gzip, chunked): a proxy that applied them would pass on a body other than ours.
    const transfer = headers['transfer-encoding']?.trim().toLowerCase()
    if (transfer !== undefined && transfer !== 'chunked')
      throw new AirlockError(
        'AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE',
        `request bodies are read as sent; Transfer-Encoding ${transfer.slice(0, 40)} is not supported (only chunked)`,
      )
    const coding = headers['content-encoding']?.trim().toLowerCase()
    if (coding && coding !== 'identity')
      throw new AirlockError(
        'AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE',
        `request bodies are read as sent; Content-Encoding ${coding.slice(0, 40)} is not supported`,
      )
    const charset = declaredCharset(headers['content-type'])
    if (charset !== undefined && !UTF8_CHARSETS.has(charset))
      throw new AirlockError(
        'AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE',
        charset === 'repeated'
          ? 'request bodies must be UTF-8; this Content-Type names more than one charset'
          : `request bodies must be UTF-8; this one says charset=${charset.slice(0, 40)}`,
      )
    return payload
  })
}

/**
 * A route that reads no body takes a request that names any Content-Type and sends
 * nothing (a client may name one for an empty DELETE, as it may `application/json`); a
 * body of a type no parser of the scope reads is refused with 415 unread, as before.
 */
export function takeEmptyBodiesOfAnyType(app: FastifyInstance): void {
  app.addContentTypeParser('*', (request, _payload, done) => {
    const { headers } = request
    if (!announcesBody(headers)) return done(null, undefined)
    const type = headers['content-type']?.split(';')[0]?.trim().slice(0, 80)
    done(
      new AirlockError(
        'AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE',
        type ? `request bodies are application/json; this one is ${type}` : 'a request body must name its Content-Type',
      ),
    )
  })
}
