import t from 'tap'
import { rawBundleSpec } from '../../cli/bench/raw-runsc.js'
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

t.test("a raw run's bundle: runsc spec's starter with the image as its root and the job's files", async (t) => {
  const starter = {
    ociVersion: '1.0.0',
    process: { args: ['bash', 'main.sh'], cwd: '/workspace' },
    root: { path: 'rootfs', readonly: true },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'network' }] },
  }
  const before = structuredClone(starter)
  const spec = rawBundleSpec(starter, '/images/default/rootfs', '/run/x/workspace')
  t.same(spec.root, { path: '/images/default/rootfs', readonly: true }, 'the image, read-only')
  t.same(spec.process, starter.process, "runsc spec's process, as it wrote it")
  t.same(spec.linux, starter.linux, "and its namespaces (runsc's own network: none)")
  t.same(spec.mounts, [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/workspace', type: 'bind', source: '/run/x/workspace', options: ['rbind', 'ro'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' },
  ])
  t.same(starter, before, 'the starter is left as it was')
})
