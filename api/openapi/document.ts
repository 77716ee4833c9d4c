import { STATUS_CODES } from 'node:http'
import { ErrorResponseSchema } from '../schemas.js'

/**
 * Finishing the OpenAPI document @fastify/swagger builds from the route schemas, so that
 * generated clients and API fuzzers can use it as it is (pure: document in, document out).
 *
 * - Shared schemas move to `components.schemas` and are referenced: a schema is shared
 *   when it has a `title`, which also names the generated model.
 * - Every operation lists every status the service can answer, not only the ones its
 *   handler chooses: the parser's 400, 408 and 431, the router's 414, 413 and 415 for
 *   bodies, 401 where a key is needed, 503 when the store is down; a WebSocket route's
 *   upgrade (101) beside its 426.
 */

type Json = Record<string, unknown>

/** Problems found while finishing the document; a test asserts there are none. */
export interface DocumentProblem {
  where: string
  problem: string
}

export interface FinishedDocument {
  doc: Json
  problems: DocumentProblem[]
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Replaces every titled schema by a `$ref` to `components.schemas[title]`. Two different
 * schemas under one title are a problem (the second keeps its inline form).
 */
export function hoistNamedSchemas(doc: Json): FinishedDocument {
  const problems: DocumentProblem[] = []
  const components = (doc.components ??= {}) as Json
  const schemas = (components.schemas ??= {}) as Json
  const seen = new Map<string, string>()

  const hoist = (node: unknown, where: string): unknown => {
    if (Array.isArray(node)) return node.map((n, i) => hoist(n, `${where}/${i}`))
    if (!isObject(node)) return node
    const walked: Json = {}
    for (const [k, v] of Object.entries(node))
      walked[k] = k === 'example' || k === 'examples' ? v : hoist(v, `${where}/${k}`)
    const title = walked.title
    if (typeof title !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(title) || !looksLikeSchema(walked)) return walked
    const text = JSON.stringify(walked)
    const before = seen.get(title)
    if (before === undefined) {
      seen.set(title, text)
      schemas[title] = walked
    } else if (before !== text) {
      problems.push({ where, problem: `two different schemas are titled ${title}` })
      return walked
    }
    return { $ref: `#/components/schemas/${title}` }
  }

  const paths = hoist(doc.paths ?? {}, '#/paths') as Json
  return { doc: { ...doc, paths, components: { ...components, schemas: sortKeys(schemas) } }, problems }
}

function looksLikeSchema(node: Json): boolean {
  return 'type' in node || 'anyOf' in node || 'oneOf' in node || 'enum' in node || 'properties' in node
}

function sortKeys(o: Json): Json {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)))
}

const BODY_METHODS = new Set(['post', 'put', 'patch'])
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']

/** What every status the service answers on its own means, for the document. */
const STANDARD_ERRORS: Record<string, string> = {
  '400':
    'The request is malformed or fails validation (AIRLOCK_ERR_VALIDATION, AIRLOCK_ERR_BAD_REQUEST, AIRLOCK_ERR_MALFORMED_JSON, AIRLOCK_ERR_JSON_TOO_COMPLEX)',
  '401': 'Missing, wrong or revoked key (AIRLOCK_ERR_UNAUTHORIZED)',
  '408': 'The request took too long to arrive (AIRLOCK_ERR_REQUEST_TIMEOUT)',
  '413': 'The body is larger than the server takes (AIRLOCK_ERR_BODY_TOO_LARGE)',
  '414': 'A path parameter is longer than any valid one (AIRLOCK_ERR_URI_TOO_LONG)',
  '415': 'The body is not application/json (AIRLOCK_ERR_UNSUPPORTED_MEDIA_TYPE)',
  '429':
    "The client's address sent too many keys that open nothing this second; retry after Retry-After (AIRLOCK_ERR_TOO_MANY_FAILED_KEYS)",
  '431': 'The request headers are too large (AIRLOCK_ERR_HEADERS_TOO_LARGE)',
  '500': 'An internal error; logged by the server (AIRLOCK_ERR_INTERNAL)',
  '503': 'The job store is unavailable or full; retry (AIRLOCK_ERR_STORE_UNAVAILABLE, AIRLOCK_ERR_STORE_FULL)',
}

function errorResponse(description: string): Json {
  // Inline and titled: hoisting makes it the one ErrorResponse component.
  return { description, content: { 'application/json': { schema: structuredClone(ErrorResponseSchema) } } }
}

/**
 * Adds the statuses every operation can answer, describes every response by its status,
 * and points error responses at the one Error schema.
 */
export function completeResponses(doc: Json): Json {
  const paths: Json = {}
  for (const [path, item] of Object.entries((doc.paths ?? {}) as Json)) {
    const ops: Json = {}
    for (const [method, value] of Object.entries(item as Json)) {
      if (!METHODS.includes(method) || !isObject(value)) {
        ops[method] = value
        continue
      }
      const op = value
      const secured = !(Array.isArray(op.security) && op.security.length === 0)
      const needs = ['400', '408', '431', '500']
      if (path.includes('{')) needs.push('414')
      if (BODY_METHODS.has(method) && op.requestBody) needs.push('413', '415')
      if (secured) needs.push('401', '429', '503')
      const responses: Json = { ...((op.responses ?? {}) as Json) }
      for (const status of needs) responses[status] ??= errorResponse(STANDARD_ERRORS[status]!)
      // A route that answers 426 to plain HTTP is a WebSocket: its success is the upgrade.
      if (responses['426'])
        responses['101'] ??= {
          description: 'Switching Protocols: the WebSocket is open (messages are described above)',
        }
      for (const [status, r] of Object.entries(responses)) {
        if (!isObject(r)) continue
        if (r.description === 'Default Response' || r.description === undefined) {
          responses[status] = {
            ...r,
            description: STANDARD_ERRORS[status] ?? STATUS_CODES[Number(status)] ?? 'Response',
          }
        }
      }
      ops[method] = {
        ...op,
        responses: Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b))),
      }
    }
    paths[path] = ops
  }
  return { ...doc, paths }
}

/** Operations without an operationId, or sharing one: a generated client needs each once. */
export function operationIdProblems(doc: Json): DocumentProblem[] {
  const problems: DocumentProblem[] = []
  const ids = new Map<string, string>()
  for (const [path, item] of Object.entries((doc.paths ?? {}) as Json)) {
    for (const [method, op] of Object.entries(item as Json)) {
      if (!METHODS.includes(method) || !isObject(op)) continue
      const where = `${method.toUpperCase()} ${path}`
      const id = op.operationId
      if (typeof id !== 'string') problems.push({ where, problem: 'no operationId' })
      else if (ids.has(id)) problems.push({ where, problem: `operationId ${id} is also ${ids.get(id)}'s` })
      else ids.set(id, where)
    }
  }
  return problems
}

/** The whole finishing step; problems are what a test checks to be none. */
export function finishDocument(doc: Json): FinishedDocument {
  const hoisted = hoistNamedSchemas(completeResponses(doc))
  return { doc: hoisted.doc, problems: [...hoisted.problems, ...operationIdProblems(hoisted.doc)] }
}
