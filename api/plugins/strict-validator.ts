import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifySchemaCompiler } from 'fastify'
import type { TSchema } from 'typebox'
import { BoundedValidator } from './bounded-validator.js'

/** How a query string or path parameter must be written to be read as a number or a boolean. */
const WRITTEN = {
  integer: { re: /^-?(0|[1-9][0-9]{0,15})$/, message: 'must be an integer written in decimal digits' },
  number: { re: /^-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,15})?$/, message: 'must be a number written in decimal digits' },
  boolean: { re: /^(true|false)$/, message: 'must be true or false' },
} as const

interface PartSchema {
  properties?: Record<string, { type?: unknown }>
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
  const properties = (route.schema as PartSchema).properties ?? {}
  const typed = Object.entries(properties).flatMap(([name, s]) =>
    typeof s.type === 'string' && s.type in WRITTEN ? [[name, WRITTEN[s.type as keyof typeof WRITTEN]] as const] : [],
  )
  if (typed.length === 0) return check
  return (value: unknown) => {
    const raw = (value ?? {}) as Record<string, unknown>
    const errors = typed
      .filter(([name, w]) => raw[name] !== undefined && !(typeof raw[name] === 'string' && w.re.test(raw[name])))
      .map(([name, w]) => ({ instancePath: `/${name}`, message: w.message }))
    if (errors.length > 0) return { error: errors as never }
    return check(value)
  }
}
