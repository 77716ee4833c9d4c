import type { TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'

/**
 * Elements (array items and object properties, at any depth) of the values whose
 * problems one request has listed one by one. TypeBox finds every problem of a value
 * before it returns a few, at about a microsecond each, and a bad value can have one per
 * element; past this a request is told only that its value does not match.
 */
export const MAX_ERROR_ELEMENTS = 2000

/** What one request may still spend on listing problems: shared by the jobs of a batch. */
export class ErrorBudget {
  elements = MAX_ERROR_ELEMENTS
}

const PRIMITIVES = new Set(['string', 'number', 'integer', 'boolean', 'null'])

/**
 * The most elements a value the schema accepts can have (Infinity where the schema does
 * not bound it: an unknown, an array without maxItems, an open object). Pure.
 */
export function maxElements(schema: unknown): number {
  if (schema === null || typeof schema !== 'object') return Number.POSITIVE_INFINITY
  const s = schema as Record<string, unknown>
  const branches = (s.anyOf ?? s.oneOf) as unknown[] | undefined
  if (Array.isArray(branches)) return Math.max(0, ...branches.map(maxElements))
  const types = Array.isArray(s.type) ? s.type : [s.type]
  if (s.type !== undefined && types.every((t) => PRIMITIVES.has(t as string))) return 0
  if (s.type === undefined && (s.enum !== undefined || s.const !== undefined)) return 0
  if (s.type === 'array') {
    return typeof s.maxItems === 'number' ? s.maxItems * (1 + maxElements(s.items)) : Number.POSITIVE_INFINITY
  }
  if (s.type !== 'object') return Number.POSITIVE_INFINITY
  const named = Object.values((s.properties ?? {}) as Record<string, unknown>)
  let total = named.reduce((n: number, p) => n + 1 + maxElements(p), 0)
  const others = [
    ...Object.values((s.patternProperties ?? {}) as Record<string, unknown>),
    ...(s.additionalProperties === false ? [] : [s.additionalProperties === undefined ? {} : s.additionalProperties]),
  ]
  if (others.length > 0) {
    if (typeof s.maxProperties !== 'number') return Number.POSITIVE_INFINITY
    total += s.maxProperties * (1 + Math.max(...others.map(maxElements)))
  }
  return total
}

/** The elements of `value`, counted up to just past `max`. */
function elementsUpTo(value: unknown, max: number): number {
  const pending: unknown[] = [value]
  let seen = 0
  while (pending.length > 0 && seen <= max) {
    const v = pending.pop()
    if (v === null || typeof v !== 'object') continue
    const children = Array.isArray(v) ? v : Object.values(v)
    seen += children.length
    if (seen <= max) for (const child of children) pending.push(child)
  }
  return seen
}

/** A problem as TypeBox words it (its keyword and params too, which adapters read), or one at the root. */
export interface Problem {
  instancePath: string
  message: string
  keyword?: string
  params?: Record<string, unknown>
}

/**
 * A compiled schema whose checks cost what the schema allows, not what a caller sends:
 * a value with more elements than any value it accepts is refused before it is walked,
 * and a refused value's problems are listed only within the request's ErrorBudget.
 */
export class BoundedValidator<T extends TSchema = TSchema> {
  private readonly validator: Validator<Record<string, never>, T>
  readonly maxElements: number

  constructor(schema: T) {
    this.validator = Compile(schema) as unknown as Validator<Record<string, never>, T>
    this.maxElements = maxElements(schema)
  }

  /** What is wrong with the value, or undefined when it matches. */
  problems(value: unknown, budget: ErrorBudget = new ErrorBudget()): Problem[] | undefined {
    if (Number.isFinite(this.maxElements) && elementsUpTo(value, this.maxElements) > this.maxElements)
      return [{ instancePath: '', message: `has more than the ${this.maxElements} elements any valid value can have` }]
    if (this.validator.Check(value)) return undefined
    // Counting is as cheap as the parse that made the value; the listing is what is bounded.
    const elements = elementsUpTo(value, budget.elements)
    if (elements > budget.elements)
      return [{ instancePath: '', message: 'does not match the schema (too many elements to list each problem)' }]
    budget.elements -= elements
    return this.validator.Errors(value)
  }
}
