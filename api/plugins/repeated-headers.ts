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
