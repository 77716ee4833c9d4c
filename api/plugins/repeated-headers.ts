/**
 * Headers a request may send (Apache's LimitRequestFields). Node keeps a request's first
 * `maxHeadersCount` (2000 by default) and drops the rest unseen, so a second
 * Authorization after the 2000th passed the check below (the ninth review): the server
 * keeps one more than this, and a request that has it is refused.
 */
export const MAX_HEADERS = 100

/**
 * Headers a request must send at most once. Node keeps the first of a repeated
 * Authorization, Host or Content-Type and drops the rest (and joins two X-Auth-Tokens); a proxy in front may act on
 * the last, and then the two disagree on who is calling or what the body is.
 */
const ONCE = new Set(['authorization', 'x-auth-token', 'host', 'content-type', 'content-length', 'idempotency-key'])

/** The first header of ONCE that `rawHeaders` (name, value, name, value...) has twice, lower-cased. */
export function repeatedHeader(rawHeaders: readonly string[]): string | undefined {
  let seen: Set<string> | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    if (!ONCE.has(name)) continue
    seen ??= new Set()
    if (seen.has(name)) return name
    seen.add(name)
  }
  return undefined
}
