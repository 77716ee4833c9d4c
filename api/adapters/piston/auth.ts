import type { FastifyRequest } from 'fastify'
import { bearerKey } from '../../plugins/auth.js'

/**
 * Where a Piston client's API key is. Piston itself has no credential; its public
 * instance (emkc.org) has taken keys in a bare `Authorization: <key>` header since its
 * first keys (engineer-man/piston-bot sends them so), and is key-only since Feb 2026.
 * Accepted, in the Authorization header:
 * - `Bearer <key>`, as the rest of Airlock;
 * - `<key>` alone, as emkc.org's clients send it;
 * - `Basic base64(user:key)`: what a client that cannot set headers sends when the key
 *   is in its server URL (`http://airlock:<key>@host/piston`; piston-client on npm,
 *   through node-fetch, does). The password is the key; a URL with only a user
 *   (`http://<key>@host`) gives the user.
 * The key is never in the path or query, so no logged URL carries it.
 */
export function pistonKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (!header) return undefined
  const bearer = bearerKey(request)
  if (bearer) return bearer
  const basic = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)?.[1]
  if (basic) {
    const pair = Buffer.from(basic, 'base64').toString('utf8')
    const colon = pair.indexOf(':')
    const key = colon < 0 ? pair : pair.slice(colon + 1) || pair.slice(0, colon)
    return key || undefined
  }
  return /^\S+$/.test(header) ? header : undefined
}

export const MISSING_KEY =
  'missing API key: send Authorization: Bearer <key> (or Authorization: <key>), or put the key in the server URL as its password: http://airlock:<key>@host/piston'
