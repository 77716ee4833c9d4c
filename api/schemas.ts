import { Type, type Static } from 'typebox'

/** The one error shape every 4xx and 5xx has. Clients branch on `code`. */
export const ErrorResponseSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'Stable machine-readable code, AIRLOCK_ERR_*' }),
  message: Type.String(),
  details: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
})

export type ErrorResponse = Static<typeof ErrorResponseSchema>

/** Error responses a route declares, so they are documented and serialized alike. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorResponseSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorResponseSchema]))
}

export const RuntimeSchema = Type.Object({
  name: Type.String(),
  description: Type.String(),
  version: Type.Union([Type.String(), Type.Null()], { description: 'As reported by live workers; null when none reports it' }),
  defaultEntrypoint: Type.String(),
})

export const RuntimeListSchema = Type.Object({ runtimes: Type.Array(RuntimeSchema) })
