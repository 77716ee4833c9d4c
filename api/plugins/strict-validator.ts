import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'
import { Type, type TSchema } from 'typebox'
import { BoundedValidator } from './bounded-validator.js'

/** How a query string or path parameter must be written to be read as a number or a boolean. */
const WRITTEN = {
  integer: { re: /^-?(0|[1-9][0-9]{0,15})$/, message: 'must be an integer written in decimal digits' },
  number: { re: /^-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,15})?$/, message: 'must be a number written in decimal digits' },
  boolean: { re: /^(true|false)$/, message: 'must be true or false' },
} as const

interface PartSchema {
  properties?: Record<string, { type?: unknown }>
  [CLOSED]?: readonly string[]
}

/**
 * Marks a query schema whose route takes no other parameters than its own and the
 * credentials listed under it. Not `additionalProperties: false`: TypeBox then stops
 * converting the named ones (`?limit=1` was "must be integer").
 */
const CLOSED = Symbol('closed query')

/**
 * A route's `config` naming the query parameters that are credentials (a security
 * scheme's, read by the auth hook): taken, but not in the query schema, where the
 * OpenAPI document would have them twice.
 */
export interface QueryCredentialsConfig {
  queryCredentials?: readonly string[]
}

/**
 * Makes every route of `scope` refuse a query parameter its schema does not name (a
 * route without a query schema takes none), as its bodies refuse unknown properties: a
 * misspelt `?wiat=true` was ignored, and the caller never knew its job was not waited
 * for. Airlock's own API only: the Judge0 and Piston adapters take what their clients
 * send, as those services do.
 */
export function closeQueryStrings(scope: FastifyInstance): void {
  scope.addHook('onRoute', (route) => {
    const query = (route.schema?.querystring as TSchema | undefined) ?? Type.Object({})
    // A copy with every property (TypeBox's kind is not enumerable: a spread lost it, and with it the conversions).
    const closed = Object.create(Object.getPrototypeOf(query), Object.getOwnPropertyDescriptors(query)) as PartSchema
    closed[CLOSED] = (route.config as QueryCredentialsConfig | undefined)?.queryCredentials ?? []
    route.schema = { ...route.schema, querystring: closed }
  })
}

/**
 * The routes' validator: TypeBox's, which reads a query string or path parameter as
 * the number or boolean its schema says by converting what it can (`?limit=true`
 * became 1, `1e2` 100), first held to plain decimal digits and `true`/`false`, so a
 * value is taken only as it was meant. Bodies are JSON and checked as they are, and
 * checked at a cost their schema bounds (BoundedValidator).
 */
export const strictValidatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  if (route.httpPart === 'body') {
    const validator = new BoundedValidator(route.schema as TSchema)
    return (value: unknown) => {
      const problems = validator.problems(value)
      return problems ? { error: problems as never } : { value }
    }
  }
  const check = TypeBoxValidatorCompiler(route as Parameters<typeof TypeBoxValidatorCompiler>[0])
  const { properties = {}, [CLOSED]: closedQuery } = route.schema as PartSchema
  const typed = Object.entries(properties).flatMap(([name, s]) =>
    typeof s.type === 'string' && s.type in WRITTEN ? [[name, WRITTEN[s.type as keyof typeof WRITTEN]] as const] : [],
  )
  const closed = route.httpPart === 'querystring' && closedQuery !== undefined
  const credentials = new Set(closedQuery ?? [])
  const names = Object.keys(properties)
  const unknownMessage = `is not a query parameter of this route (${names.length > 0 ? `it takes ${names.join(', ')}` : 'it takes none'})`
  if (typed.length === 0 && !closed) return check
  return (value: unknown) => {
    const raw = (value ?? {}) as Record<string, unknown>
    const unknown = closed
      ? Object.keys(raw).filter((name) => !Object.hasOwn(properties, name) && !credentials.has(name))
      : []
    const errors = [
      ...unknown.slice(0, 20).map((name) => ({ instancePath: `/${name.slice(0, 100)}`, message: unknownMessage })),
      ...typed
        .filter(([name, w]) => raw[name] !== undefined && !(typeof raw[name] === 'string' && w.re.test(raw[name])))
        .map(([name, w]) => ({ instancePath: `/${name}`, message: w.message })),
    ]
    if (errors.length > 0) return { error: errors as never }
    return check(value)
  }
}
