import t from 'tap'
import { Type } from 'typebox'
import { BoundedValidator, ErrorBudget, MAX_ERROR_ELEMENTS, maxElements } from '../../api/plugins/bounded-validator.js'
import { JobRequestSchema } from '../../core/job-spec.js'

t.test('the most elements a value of a schema can have', async (t) => {
  t.equal(maxElements(Type.String()), 0)
  t.equal(maxElements(Type.Array(Type.String(), { maxItems: 3 })), 3)
  t.equal(maxElements(Type.Array(Type.Array(Type.Integer(), { maxItems: 2 }), { maxItems: 3 })), 3 * (1 + 2))
  t.equal(maxElements(Type.Object({ a: Type.String(), b: Type.Optional(Type.Number()) })), Infinity, 'an open object')
  t.equal(
    maxElements(Type.Object({ a: Type.String(), b: Type.Optional(Type.Number()) }, { additionalProperties: false })),
    2,
  )
  t.equal(
    maxElements(Type.Record(Type.String({ pattern: '^[a-z]+$' }), Type.String(), { maxProperties: 5 })),
    Infinity,
    'a record without additionalProperties: false takes any other key',
  )
  t.equal(maxElements(Type.Array(Type.Unknown())), Infinity, 'an array without maxItems')
  t.equal(maxElements(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])), 4)
  const job = maxElements(JobRequestSchema)
  t.ok(Number.isFinite(job) && job < 10_000, `a job request is bounded (${job})`)
})

t.test('a value larger than the schema allows is refused before it is walked', async (t) => {
  const v = new BoundedValidator(
    Type.Object({ args: Type.Array(Type.String(), { maxItems: 4 }) }, { additionalProperties: false }),
  )
  t.equal(v.problems({ args: ['a', 'b'] }), undefined, 'a good value')
  t.equal(v.problems({ args: [] }), undefined)
  t.match(
    v.problems({ args: [1, 'b'] }),
    [{ instancePath: '/args/0', message: 'must be string', keyword: 'type' }],
    'listed',
  )
  t.same(v.problems({ args: Array(100_000).fill(0) }), [
    { instancePath: '', message: 'has more than the 5 elements any valid value can have' },
  ])
  t.ok(v.problems({ args: ['a', 'b', 'c', 'd', 'e'] }), 'one too many is still refused, by the schema')
})

t.test("a request's budget bounds how much it lists, where the schema does not bound the value", async (t) => {
  const v = new BoundedValidator(Type.Array(Type.String()))
  const budget = new ErrorBudget()
  const bad = Array(MAX_ERROR_ELEMENTS - 10).fill(0)
  t.ok((v.problems(bad, budget)?.length ?? 0) > 0, 'the first bad value is listed')
  t.same(
    v.problems(bad, budget),
    [{ instancePath: '', message: 'does not match the schema (too many elements to list each problem)' }],
    'the next of the same request is not: the budget is spent',
  )
  t.equal(v.problems(['fine'], budget), undefined, 'a good value is still taken')
  t.ok((v.problems(bad, new ErrorBudget())?.length ?? 0) > 1, 'another request has its own')
})
