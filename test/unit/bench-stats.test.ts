import t from 'tap'
import { ratio } from '../../cli/bench/stats.js'

t.test('gVisor/runc ratio: of the medians, with the spread of interleaved pairs', async (t) => {
  const r = ratio([200, 300, 400], [100, 100, 100])!
  t.equal(r.ofMedians, 3)
  t.ok(r.spread[0] >= 2 && r.spread[1] <= 4 && r.spread[0] <= r.spread[1])
})

t.test('no ratio from times below the clock resolution (Kubernetes counts whole seconds)', async (t) => {
  t.equal(ratio([0, 0, 0], [1000, 1000, 1000]), null, 'not 0x')
  t.equal(ratio([1000, 1000, 1000], [0, 0, 0]), null, 'not a billion x')
  const r = ratio([3000, 3000, 3000], [1000, 0, 1000])!
  t.equal(r.ofMedians, 3)
  t.same(r.spread, [3, 3], 'a pair with a zero is left out of the spread')
})
