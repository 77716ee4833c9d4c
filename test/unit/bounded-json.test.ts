import t from 'tap'
import { JSON_BOUNDS, jsonShapeProblem } from '../../api/plugins/bounded-json.js'

const small = { maxDepth: 3, maxValues: 10, maxNames: 3, maxShapeSteps: 100 } as const

t.test('a JSON text within the bounds passes, whatever its strings hold', async (t) => {
  t.equal(jsonShapeProblem('{"a":[1,2,{"b":"x"}]}', small), undefined)
  t.equal(jsonShapeProblem('"[[[[[[[[[[[[[["', small), undefined, 'brackets in a string are not nesting')
  t.equal(jsonShapeProblem('{"a":"\\"[[[[[[[[","b":1}', small), undefined, 'nor after an escaped quote')
  t.equal(
    jsonShapeProblem('{"a":"x\\\\","b":1,"c":"d,e,f,g,h,i,j,k,l,m,n"}', small),
    undefined,
    'an escaped backslash ends',
  )
  t.equal(jsonShapeProblem('{"a":"n1","a":"n2","b":"n3","c":"n4"}', small), undefined, 'string values are not names')
  const job = JSON.stringify({
    jobs: Array(50).fill({ runtime: 'bash', source: 'x', files: [{ path: 'a', content: 'b' }] }),
  })
  t.equal(jsonShapeProblem(job), undefined, 'a batch of 50 jobs is far within the real bounds')
})

t.test('past a bound, it says which', async (t) => {
  t.match(jsonShapeProblem('[[[[1]]]]', small), /deeper than 3/)
  t.match(jsonShapeProblem('{"a":{"b":{"c":{}}}}', small), /deeper than 3/)
  t.match(jsonShapeProblem(`[${Array(11).fill(1).join(',')}]`, small), /more than 10 values/)
  t.match(jsonShapeProblem('[{"a":1},{"b":1},{"c":1},{"d":1}]', small), /more than 3 distinct/)
  t.equal(jsonShapeProblem('[{"a":1},{"a":1},{"b":1},{"c":1}]', small), undefined, 'names are counted once each')
  const orders = { ...small, maxNames: 10, maxShapeSteps: 4, maxValues: 100 }
  t.equal(jsonShapeProblem('[{"a":1,"b":1},{"a":2,"b":2},{"a":3,"b":3}]', orders), undefined, 'one key order, once')
  t.equal(jsonShapeProblem('[{"a":1,"b":1},{"a":1,"c":1},{"b":1}]', orders), undefined, 'a, a-b, a-c, b: four steps')
  t.match(jsonShapeProblem('[{"a":1,"b":1},{"b":1,"a":1},{"c":1}]', orders), /more than 4 different key orders/)
  t.match(jsonShapeProblem('['.repeat(JSON_BOUNDS.maxDepth + 1)), /nests deeper/, 'an unclosed text too')
})
