import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifySchema } from 'fastify'
import { finishDocument } from '../openapi/document.js'
import { pageHeaders } from './console.js'

/** The OpenAPI version the document is written in: numeric exclusiveMinimum, `type: null`. */
export const OPENAPI_VERSION = '3.1.0'

/**
 * swagger-ui's static policy with nothing from elsewhere: no frames of it on other pages,
 * no validator badge from validator.swagger.io, no styles or fonts from any https origin,
 * and no upgrade of its requests to https (the API may be served on plain HTTP).
 */
export function docsCsp(policy: string): string {
  const directives = policy
    .split(';')
    .map((d) => d.trim().split(/\s+/))
    .filter((d) => d[0] && d[0] !== 'upgrade-insecure-requests')
    .map(([name, ...sources]) => {
      if (name === 'frame-ancestors') return [name, "'none'"]
      return [name!, ...sources.filter((s) => s !== 'https:' && s !== 'validator.swagger.io')]
    })
  return [...directives.map((d) => d.join(' ')), "form-action 'none'"].join('; ')
}

/**
 * The credentials: a tenant's API key, the operator's admin key, and a browser's
 * single-use token for one job's stream (in place of the key, on that route only).
 */
export const SECURITY_SCHEMES = {
  tenantKey: {
    type: 'http',
    scheme: 'bearer',
    description: "A tenant's API key (AIRLOCK_API_KEYS, or issued by POST /v1/admin/tenants/{name}/keys)",
  },
  adminKey: {
    type: 'http',
    scheme: 'bearer',
    description: "The operator's key (AIRLOCK_ADMIN_KEY), for /v1/admin only",
  },
  streamToken: {
    type: 'apiKey',
    in: 'query',
    name: 'token',
    description:
      "A single-use token from POST /v1/jobs/{id}/stream-tokens, for opening that job's stream from a browser",
  },
} as const

/** The stream route takes a tenant key or a stream token. */
export const STREAM_SECURITY: { [scheme: string]: string[] }[] = [{ tenantKey: [] }, { streamToken: [] }]

/** Operator routes declare this; every other route needs a tenant key unless it says `security: []`. */
export const ADMIN_SECURITY = [{ adminKey: [] }]

/** What a route's trailing `*` (the rest of the path, slashes and all) is called in the document. */
const WILDCARD_NAME = 'path'

/** The route's schema with its wildcard as a documented path parameter (routes leave `*` out). */
function namedWildcard(schema: FastifySchema): FastifySchema {
  const params = (schema.params ?? { type: 'object', properties: {} }) as {
    properties?: Record<string, unknown>
    required?: string[]
  }
  const rest = {
    type: 'string',
    minLength: 1,
    description: 'The rest of the path, slashes included (as they are, or percent-encoded)',
  }
  return {
    ...schema,
    params: {
      ...params,
      properties: { ...params.properties, [WILDCARD_NAME]: rest },
      required: [...(params.required ?? []), WILDCARD_NAME],
    },
  }
}

/**
 * The OpenAPI document at /docs/json and its UI at /docs. Routes live under prefixes
 * (`/v1/jobs` + `/`), which fastify answers with and without the trailing slash; the
 * document lists the canonical path, without it.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: OPENAPI_VERSION,
      info: { title: 'Airlock', version: '1', description: 'Run untrusted code in gVisor sandboxes.' },
      servers: [{ url: '/', description: 'The server that serves this document' }],
      components: { securitySchemes: SECURITY_SCHEMES },
      security: [{ tenantKey: [] }],
      tags: [
        { name: 'jobs', description: 'Submit jobs, read their results, output and files' },
        { name: 'runtimes', description: 'What jobs may run' },
        { name: 'tenant', description: "The calling tenant's own records" },
        { name: 'admin', description: 'Operator routes, behind the admin key' },
        { name: 'health', description: 'Liveness, readiness and metrics' },
      ],
    },
    transform: ({ schema, url }) => {
      // fastify hands the plugin one options object for both spellings (it sets its url
      // to the last, slashed one), so the slash is dropped here rather than one route hidden.
      const canonical = url.length > 1 ? url.replace(/\/+$/, '') : url
      return url.endsWith('/*')
        ? { schema: namedWildcard(schema), url: `${canonical.slice(0, -2)}/{${WILDCARD_NAME}}` }
        : { schema, url: canonical }
    },
    transformObject: (document) => {
      const { doc, problems } = finishDocument(
        ('openapiObject' in document ? document.openapiObject : {}) as Record<string, unknown>,
      )
      if (problems.length > 0) app.log.warn({ problems }, 'the OpenAPI document has problems')
      return doc
    },
  })
  await app.register(async (docs) => {
    // The document is built once, but fastify would serialise its ~70 KB again for every
    // GET /docs/json (~0.4 ms of CPU: 2,350 a second here against healthz's 28,000), and
    // anyone may ask for it without a key: it is serialised once.
    let serialized: string | undefined
    docs.setReplySerializer((payload) =>
      payload === docs.swagger() ? (serialized ??= JSON.stringify(payload)) : JSON.stringify(payload),
    )
    // The docs page is on the console's origin, where the keys are kept: the same headers,
    // and swagger-ui's own policy (the hashes of its inline pieces) without what reaches
    // out or lets it be framed.
    docs.addHook('onSend', async (_request, reply) => pageHeaders(reply.raw))
    await docs.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, transformStaticCSP: docsCsp })
  })
}
