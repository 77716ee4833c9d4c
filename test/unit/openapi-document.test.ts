import t from 'tap'
import {
  completeResponses,
  finishDocument,
  hoistNamedSchemas,
  operationIdProblems,
} from '../../api/openapi/document.js'

const thing = { type: 'object', title: 'Thing', properties: { n: { type: 'integer' } } }
const err = { type: 'object', title: 'Error', properties: { code: { type: 'string' } } }
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } })

t.test('titled schemas become components, referenced wherever they were', async (t) => {
  const { doc, problems } = hoistNamedSchemas({
    paths: {
      '/a': { get: { responses: { 200: json({ type: 'array', items: thing }), 404: json(err) } } },
      '/b': { post: { requestBody: json(thing), responses: {} } },
    },
  })
  t.same(problems, [])
  const components = (doc.components as { schemas: Record<string, unknown> }).schemas
  t.same(Object.keys(components), ['Error', 'Thing'])
  t.same(components.Thing, thing)
  t.notMatch(JSON.stringify(doc.paths), /"title"/)
  t.match(JSON.stringify(doc.paths), /"\$ref":"#\/components\/schemas\/Thing"/)
})

t.test('two different schemas under one title are a problem, and the second stays inline', async (t) => {
  const other = { ...thing, properties: { m: { type: 'string' } } }
  const { doc, problems } = hoistNamedSchemas({
    paths: { '/a': { get: { responses: { 200: json(thing), 201: json(other) } } } },
  })
  t.equal(problems.length, 1)
  t.match(problems[0]!.problem, /Thing/)
  t.match(JSON.stringify(doc.paths), /"m"/)
})

t.test('every operation gets the statuses the server answers on its own', async (t) => {
  const doc = completeResponses({
    paths: {
      '/healthz': {
        get: { security: [], responses: { 200: { description: 'Default Response', ...json({ type: 'object' }) } } },
      },
      '/v1/things/{id}': {
        put: { requestBody: json(thing), responses: { 200: json(thing), 426: json(err) } },
        parameters: [],
      },
    },
  }) as { paths: Record<string, Record<string, { responses: Record<string, { description: string }> }>> }
  const open = doc.paths['/healthz']!.get!.responses
  t.same(
    Object.keys(open).sort(),
    ['200', '400', '408', '431', '500'],
    'no 401, 429, 503 or 414 for an open route without parameters',
  )
  t.equal(open['200']!.description, 'OK', 'a default description is replaced by the status')
  const put = doc.paths['/v1/things/{id}']!.put!.responses
  t.same(Object.keys(put).sort(), [
    '101',
    '200',
    '400',
    '401',
    '408',
    '413',
    '414',
    '415',
    '426',
    '429',
    '431',
    '500',
    '503',
  ])
  t.same(doc.paths['/v1/things/{id}']!.parameters, [], 'what is not an operation is kept as it was')
})

t.test('operations need an operationId each, used once', async (t) => {
  t.same(operationIdProblems({ paths: { '/a': { get: { operationId: 'a' }, post: { operationId: 'b' } } } }), [])
  const problems = operationIdProblems({
    paths: { '/a': { get: {}, post: { operationId: 'b' } }, '/b': { get: { operationId: 'b' } } },
  })
  t.same(
    problems.map((p) => p.where),
    ['GET /a', 'GET /b'],
  )
})

t.test('finishDocument does it all and reports every problem', async (t) => {
  const { doc, problems } = finishDocument({ paths: { '/a': { get: { responses: { 200: json(thing) } } } } })
  t.same(
    problems.map((p) => p.problem),
    ['no operationId'],
  )
  t.same(
    Object.keys((doc.components as { schemas: Record<string, unknown> }).schemas),
    ['ErrorDetail', 'ErrorResponse', 'Thing'],
    'the standard errors bring the one error schema',
  )
  t.notMatch(JSON.stringify(doc.paths), /"title"/)
})
