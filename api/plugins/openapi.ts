import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { finishDocument } from '../openapi/document.js'

/** The OpenAPI version the document is written in: numeric exclusiveMinimum, `type: null`. */
export const OPENAPI_VERSION = '3.1.0'

/** The two credentials: a tenant's API key, and the operator's admin key. */
export const SECURITY_SCHEMES = {
  tenantKey: { type: 'http', scheme: 'bearer', description: "A tenant's API key (AIRLOCK_API_KEYS, or issued by POST /v1/admin/tenants/{name}/keys)" },
  adminKey: { type: 'http', scheme: 'bearer', description: "The operator's key (AIRLOCK_ADMIN_KEY), for /v1/admin only" },
} as const

/** Operator routes declare this; every other route needs a tenant key unless it says `security: []`. */
export const ADMIN_SECURITY = [{ adminKey: [] }]

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
    // fastify hands the plugin one options object for both spellings (it sets its url to
    // the last, slashed one), so the slash is dropped here rather than one route hidden.
    transform: ({ schema, url }) => ({ schema, url: url.length > 1 ? url.replace(/\/+$/, '') : url }),
    transformObject: (document) => {
      const { doc, problems } = finishDocument(('openapiObject' in document ? document.openapiObject : {}) as Record<string, unknown>)
      if (problems.length > 0) app.log.warn({ problems }, 'the OpenAPI document has problems')
      return doc
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}
