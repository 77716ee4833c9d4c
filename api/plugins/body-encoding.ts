import type { FastifyInstance } from 'fastify'
import { AirlockError } from '../../core/errors.js'

/** Charsets whose bytes read as UTF-8 unchanged: the only ones our parsers decode. */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii'])

/** The charset a Content-Type names, lower-cased; undefined when it names none. Pure. */
export function declaredCharset(contentType: string | undefined): string | undefined {
  const m = contentType === undefined ? null : /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(contentType)
  return m ? (m[1] ?? m[2] ?? '').toLowerCase() : undefined
}

/**
 * Bodies are read as they come, as UTF-8 (JSON's only interchange encoding, RFC 8259
 * §8.1): a body that says it is in another charset, or compressed (Content-Encoding:
 * gzip, br, ...), would be read as something its sender did not write. Both are refused
 * with 415 (RFC 9110 §15.5.16) before a byte of the body is read, whatever the route.
 */
export function refuseUndecodableBodies(app: FastifyInstance): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const { headers } = request
    if (headers['transfer-encoding'] === undefined && !(Number(headers['content-length']) > 0)) return payload
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
        `request bodies must be UTF-8; this one says charset=${charset.slice(0, 40)}`,
      )
    return payload
  })
}
