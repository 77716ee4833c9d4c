import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { RUNTIMES } from '../../../../core/runtimes.js'
import { errorResponses } from '../../../schemas.js'

const RuntimeSchema = Type.Object({
  name: Type.String(),
  description: Type.String(),
  version: Type.Union([Type.String(), Type.Null()], { description: 'As reported by live workers; null when none reports it' }),
  defaultEntrypoint: Type.String(),
})

const runtimesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { registry } = app.services
  app.get(
    '/',
    { schema: { summary: 'List runtimes', response: { 200: Type.Object({ runtimes: Type.Array(RuntimeSchema) }), ...errorResponses(401, 503) } } },
    async () => {
      const workers = await registry.live()
      return {
        runtimes: RUNTIMES.map((r) => ({
          name: r.name,
          description: r.description,
          version: workers.find((w) => w.runtimes[r.name])?.runtimes[r.name] ?? null,
          defaultEntrypoint: r.defaultEntrypoint,
        })),
      }
    },
  )
}

export default runtimesRoutes
