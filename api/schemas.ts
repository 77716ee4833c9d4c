import { Type, type Static } from 'typebox'

/** The longest path parameter any route takes (a job id, a tenant name, a key id), in characters. */
export const MAX_PATH_PARAM_LENGTH = 128
/**
 * The router's own bound on a path parameter, far above the schemas': a parameter too
 * long for its schema is then refused by validation, after authentication, with 400 and
 * where it is wrong (the router's 414 would come first, for callers with no key too).
 * No route matches parameters with a regular expression, so a long one costs nothing.
 */
export const ROUTER_MAX_PARAM_LENGTH = 8 * 1024

/** The one error shape every 4xx and 5xx has. Clients branch on `code`. */
export const ErrorResponseSchema = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String({ description: 'Stable machine-readable code, AIRLOCK_ERR_*' }),
    message: Type.String(),
    details: Type.Optional(
      Type.Array(Type.Object({ path: Type.String(), message: Type.String() }, { title: 'ErrorDetail' })),
    ),
  },
  { title: 'ErrorResponse' },
)

export type ErrorResponse = Static<typeof ErrorResponseSchema>

/** Error responses a route declares, so they are documented and serialized alike. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorResponseSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorResponseSchema]))
}

export const RuntimeSchema = Type.Object(
  {
    name: Type.String(),
    description: Type.String(),
    version: Type.Union([Type.String(), Type.Null()], {
      description: 'As reported by live workers; null when none reports it',
    }),
    defaultEntrypoint: Type.String(),
    compiled: Type.Boolean({ description: 'A compile step runs before the program (limits.compileTimeoutMs applies)' }),
  },
  { title: 'Runtime' },
)

export const RuntimeListSchema = Type.Object({ runtimes: Type.Array(RuntimeSchema) }, { title: 'RuntimeList' })

/** A job's id in a path. */
export const JobParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: MAX_PATH_PARAM_LENGTH }) })
