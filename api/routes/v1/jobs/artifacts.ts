import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ARTIFACTS_DIR } from '../../../../core/artifacts.js'
import { AirlockError } from '../../../../core/errors.js'
import { ownJob } from './own-job.js'
import { errorResponses, MAX_PATH_PARAM_LENGTH } from '../../../schemas.js'

/**
 * An attachment header for a name the job chose: a plain ASCII fallback (anything else
 * as `_`) and the exact name in RFC 8187 form (which leaves only its attr-chars bare).
 */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `attachment; filename="${ascii}"; filename*=UTF-8''${exact}`
}

/** A job's artifacts, one file at a time, byte for byte. */
const artifactRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store, outputWriter } = app.services

  app.get(
    '/:id/artifacts/*',
    {
      schema: {
        operationId: 'getArtifact',
        tags: ['jobs'],
        summary: `A file the job left in ${ARTIFACTS_DIR}, as it was (the job's artifacts list says which there are)`,
        description:
          'The path may hold slashes, as they are or percent-encoded. Served as application/octet-stream, an attachment, never rendered by a browser on this origin.',
        // The rest of the path (`*`) is not in the schema, which TypeBox cannot compile with
        // that name; it is looked up as it is, and anything not listed is a 404. The
        // document names it `path` (plugins/openapi.ts).
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: MAX_PATH_PARAM_LENGTH }) }),
        response: {
          200: {
            description: "The file's bytes (its own type is the artifact's contentType in the job)",
            content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
          },
          ...errorResponses(401, 404, 503),
        },
      },
    },
    async (request, reply) => {
      const view = await ownJob(store, request.params.id, request.tenant)
      const path = (request.params as { '*'?: string })['*'] ?? ''
      const found = await outputWriter.findArtifact(view, path)
      if (!found)
        throw new AirlockError('AIRLOCK_ERR_NOT_FOUND', `job ${view.id} has no artifact ${JSON.stringify(path)}`)
      const { index, artifact } = found
      const name = path.slice(path.lastIndexOf('/') + 1)
      // What a job wrote is hostile: a browser gets it as bytes to download, of no type it
      // would render, sniffs nothing, and would run nothing of it on this origin even if it
      // rendered it. Its own type is in the job's list of artifacts.
      return outputWriter.send(reply, 200, 'application/octet-stream', outputWriter.artifact(view, index), {
        'content-length': String(artifact.bytes),
        'content-disposition': contentDisposition(name),
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'none'; sandbox",
      })
    },
  )
}

export default artifactRoutes
