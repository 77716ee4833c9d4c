import { isUtf8 } from 'node:buffer'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AirlockError } from '../../core/errors.js'

/**
 * What a JSON body may hold before it is parsed. `JSON.parse` is one synchronous call on
 * the event loop whose cost is set by the body's shape, not its size: here 2 MB nested
 * 900,000 deep took 228 ms, 180,000 distinct names 100-250 ms, where 2 MB of strings
 * (source code, files) take 2 ms. Every request waits while it runs, whoever sent it.
 * What V8 pays for is objects' shapes: each object whose keys, in their order, no earlier
 * object began with makes new hidden classes, one per key past the common start (a body
 * of 25,000 objects of 3 keys drawn from 4,096 names: 114 ms). So the scan counts those
 * steps (names after a distinct start) as V8 makes them. The bounds are far past any
 * request Airlock takes (a job nests 4 deep; a batch of 50 jobs, their env and files, a
 * few hundred shapes) and hold the worst parse within them to a few milliseconds.
 */
export interface JsonBounds {
  maxDepth: number
  maxValues: number
  maxNames: number
  maxShapeSteps: number
}

export const JSON_BOUNDS: Readonly<JsonBounds> = {
  /** Arrays and objects inside one another. */
  maxDepth: 64,
  /** Values of every array and object, all together (names aside): a batch of 50 jobs of 100 files each fits. */
  maxValues: 20_000,
  /** Distinct property names. */
  maxNames: 4_096,
  /** Distinct (keys so far, next key) steps over all objects: the hidden classes V8 makes. */
  maxShapeSteps: 4_096,
}

/** Why a JSON text is past `bounds`, or undefined; a linear scan that allocates only the distinct names. */
export function jsonShapeProblem(text: string, bounds: Readonly<JsonBounds> = JSON_BOUNDS): string | undefined {
  // For each open container: true for an object (whose strings alternate name, value).
  const objects: boolean[] = []
  // For each open container: for an object, the shape its keys so far make (0: none yet).
  const shapes: number[] = []
  const names = new Set<string>()
  // (shape, next name) -> the shape they make; its size is the steps counted.
  const steps = new Map<string, number>()
  let values = 0
  let expectName = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i)
      if (expectName) {
        const name = text.slice(i + 1, end)
        names.add(name)
        if (names.size > bounds.maxNames) return `it names more than ${bounds.maxNames} distinct properties`
        const step = `${shapes[shapes.length - 1]}:${name}`
        let next = steps.get(step)
        if (next === undefined) {
          next = steps.size + 1
          steps.set(step, next)
          if (steps.size > bounds.maxShapeSteps)
            return `its objects have more than ${bounds.maxShapeSteps} different key orders`
        }
        shapes[shapes.length - 1] = next
      }
      i = end
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      objects.push(c === 0x7b)
      shapes.push(0)
      if (objects.length > bounds.maxDepth) return `it nests deeper than ${bounds.maxDepth} levels`
      if (++values > bounds.maxValues) return `it holds more than ${bounds.maxValues} values`
      expectName = c === 0x7b
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      objects.pop()
      shapes.pop()
      expectName = false
    } else if (c === 0x2c /* , */) {
      if (++values > bounds.maxValues) return `it holds more than ${bounds.maxValues} values`
      expectName = objects[objects.length - 1] === true
    } else if (c === 0x3a /* : */) {
      expectName = false
    }
  }
  return undefined
}

/** The index of the quote that closes the string opened at `start` (the text's end if none does). */
function stringEnd(text: string, start: number): number {
  let from = start + 1
  for (;;) {
    const quote = text.indexOf('"', from)
    if (quote < 0) return text.length
    let backslashes = 0
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++
    if (backslashes % 2 === 0) return quote
    from = quote + 1
  }
}

type JsonParser = (request: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void) => void
type TextParser = (request: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => void

/** A `\u` escape of a UTF-16 surrogate: the only way a JSON text that is UTF-8 can hold a lone one. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/

/** Whether every string in a parsed JSON value, names too, is well-formed Unicode (no lone surrogate). */
export function wellFormed(value: unknown): boolean {
  if (typeof value === 'string') return (value as unknown as { isWellFormed(): boolean }).isWellFormed()
  if (Array.isArray(value)) return value.every(wellFormed)
  if (value !== null && typeof value === 'object')
    return Object.entries(value).every(([name, v]) => wellFormed(name) && wellFormed(v))
  return true
}

/**
 * Fastify's own JSON parser (`__proto__` and `constructor.prototype` refused) behind the
 * request's turn and the shape check: a body past JSON_BOUNDS is 400
 * AIRLOCK_ERR_JSON_TOO_COMPLEX, never parsed. The body must be UTF-8 and its strings
 * well-formed Unicode (400 AIRLOCK_ERR_MALFORMED_JSON): read as a string, a byte that is
 * not UTF-8 became U+FFFD and a lone `\ud800` a character no file can hold, so a job ran a
 * program other than the one its caller sent.
 */
export function boundedJsonParser(scope: FastifyInstance): JsonParser {
  const parse = scope.getDefaultJsonParser('error', 'error') as unknown as TextParser
  return (request, body, done) => {
    // The body has come: the request now waits for its turn among its tenant's (auth.ts)
    // before the work of its scan and parse.
    request.takeTurn().then(() => {
      // A DELETE or GET sent with a Content-Type and nothing else: its route reads no body.
      if (body.length === 0)
        return request.routeOptions.schema?.body
          ? done(new AirlockError('AIRLOCK_ERR_MALFORMED_JSON', 'the body is empty; this route reads a JSON body'))
          : done(null, undefined)
      if (!isUtf8(body))
        return done(new AirlockError('AIRLOCK_ERR_MALFORMED_JSON', 'the body is not UTF-8 (JSON is, RFC 8259 §8.1)'))
      const text = body.toString('utf8')
      const problem = jsonShapeProblem(text)
      if (problem)
        return done(new AirlockError('AIRLOCK_ERR_JSON_TOO_COMPLEX', `the JSON body was not read: ${problem}`))
      parse(request, text, (err, value) => {
        if (!err && SURROGATE_ESCAPE.test(text) && !wellFormed(value))
          return done(
            new AirlockError(
              'AIRLOCK_ERR_MALFORMED_JSON',
              'the JSON body holds a lone surrogate (a \\ud800-\\udfff escape without its pair): text must be well-formed Unicode',
            ),
          )
        done(err, value)
      })
    }, done)
  }
}

/** Parses the scope's `application/json` bodies with `boundedJsonParser`. */
export function boundJsonBodies(scope: FastifyInstance): void {
  scope.removeContentTypeParser('application/json')
  scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, boundedJsonParser(scope))
}
