import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RUNTIMES } from '../../../../core/runtimes.js'
import { reportedVersion } from '../../../../core/worker-registry.js'
import { errorResponses, RuntimeListSchema } from '../../../schemas.js'

const runtimesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { registry } = app.services
  app.get(
    '/',
    {
      schema: {
        operationId: 'listRuntimes',
        tags: ['runtimes'],
        summary: 'List runtimes',
        response: { 200: RuntimeListSchema, ...errorResponses(401, 503) },
      },
    },
    async () => {
      const workers = await registry.live()
      return {
        runtimes: RUNTIMES.map((r) => ({
          name: r.name,
          description: r.description,
          version: reportedVersion(workers, r.name) ?? null,
          defaultEntrypoint: r.defaultEntrypoint,
          compiled: r.compile !== undefined,
        })),
      }
    },
  )
}

export default runtimesRoutes
