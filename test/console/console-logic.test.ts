import t from 'tap'
import { draftRequest, freshDraft, type Draft } from '../../console/src/draft.js'
import { fieldErrors, fieldOf } from '../../console/src/field-errors.js'
import { CHARTS, metricSum, SeriesBook } from '../../console/src/metric-series.js'
import { parseRoute, routeHref } from '../../console/src/route.js'
import { SAMPLES } from '../../console/src/samples.js'
import type { MetricsSnapshot } from '../../sdk/src/admin-types.js'
import { RUNTIMES } from '../../core/runtimes.js'

// The console's logic without a browser: routes, where API errors are shown, the
// request a draft makes, and how /metrics snapshots become charts.

t.test('routes round-trip through the URL fragment, and anything else is the playground', async (t) => {
  for (const route of [
    { page: 'playground' },
    { page: 'jobs', status: null },
    { page: 'jobs', status: 'failed' },
    { page: 'job', id: 'job_0a1b' },
    { page: 'operations' },
  ] as const) {
    t.same(parseRoute(routeHref(route)), route, routeHref(route))
  }
  t.same(parseRoute('#/jobs?status=bogus'), { page: 'jobs', status: null }, 'an unknown status filters nothing')
  t.same(parseRoute('#/elsewhere'), { page: 'playground' })
  t.same(parseRoute(''), { page: 'playground' })
  t.same(parseRoute('#/jobs/job_%61b'), { page: 'job', id: 'job_ab' }, 'ids are decoded')
  for (const bad of ['#/jobs/a%2Fb', '#/jobs/%', '#/jobs/..', '#/jobs/%2E'])
    t.same(parseRoute(bad), { page: 'jobs', status: null }, `${bad} names no job`)
})

t.test("each of the API's error pointers is shown at the field it names", async (t) => {
  t.equal(fieldOf('/limits/timeoutMs'), 'limits.timeoutMs')
  t.equal(fieldOf('/files/2/path'), 'files.2')
  t.equal(fieldOf('/source'), 'files')
  t.equal(fieldOf('/tests/0/stdin'), 'tests.0')
  t.equal(fieldOf('/env/1A'), 'env')
  t.equal(fieldOf('/runtime'), 'runtime')
  t.equal(fieldOf('/nothing'), '', 'a pointer to no field goes with the form')
  t.equal(fieldOf(''), '')
  const both = fieldErrors('invalid body', [
    { path: '/env/1A', message: 'schema is false' },
    { path: '/limits/memoryMb', message: 'must be >= 16' },
  ])
  t.same(
    [...both],
    [
      ['env', ['schema is false']],
      ['limits.memoryMb', ['must be >= 16']],
    ],
  )
  t.same(
    [...fieldErrors('limits.cpus may be at most 4', undefined)],
    [['limits.cpus', ['limits.cpus may be at most 4']]],
    'a message naming a limit, without details',
  )
  t.same([...fieldErrors('no worker can isolate', [])], [['', ['no worker can isolate']]])
})

t.test('a draft makes the request a client would write, and refuses what it cannot send', async (t) => {
  const python = RUNTIMES.find((r) => r.name === 'python')!
  const draft: Draft = {
    ...freshDraft({
      name: 'python',
      description: '',
      version: null,
      defaultEntrypoint: python.defaultEntrypoint,
      compiled: false,
    }),
    stdin: 'in',
    args: 'a b\n\nc',
    env: 'A=1\nB=x=y\n',
    limits: { timeoutMs: '2000', memoryMb: ' ' },
  }
  draft.files.push({ path: 'util.py', content: 'X = 1' })
  draft.tests.push({ stdin: '1', expectedOutput: '' }, { stdin: '2', expectedOutput: '3' })
  const made = draftRequest(draft)
  t.ok('request' in made)
  if (!('request' in made)) return
  t.same(made.request, {
    runtime: 'python',
    files: [
      { path: 'main.py', content: SAMPLES.python },
      { path: 'util.py', content: 'X = 1' },
    ],
    entrypoint: 'main.py',
    stdin: 'in',
    args: ['a b', 'c'],
    env: { A: '1', B: 'x=y' },
    limits: { timeoutMs: 2000 },
    tests: [{ stdin: '1' }, { stdin: '2', expectedOutput: '3' }],
  })
  const bad = draftRequest({ ...draft, env: 'NOEQUALS', limits: { cpus: 'lots' } })
  t.ok(
    'errors' in bad && bad.errors.has('env') && bad.errors.has('limits.cpus'),
    'a malformed env line and a limit that is not a number',
  )
  t.same(
    draftRequest({ ...draft, args: '', env: '', stdin: '', limits: {}, tests: [] }),
    { request: { runtime: 'python', files: made.request.files, entrypoint: 'main.py' } },
    'empty fields are left out',
  )
})

t.test('every runtime in the catalogue has a sample program', async (t) => {
  for (const r of RUNTIMES) t.ok(SAMPLES[r.name], r.name)
})

const snapshot = (at: number, values: Record<string, number>): MetricsSnapshot => ({
  at: new Date(at).toISOString(),
  metrics: [
    {
      name: 'airlock_jobs_submitted_total',
      help: '',
      type: 'counter',
      values: [
        { labels: { tenant: 'a' }, value: values.submitted ?? 0 },
        { labels: { tenant: 'b' }, value: 1 },
      ],
    },
    {
      name: 'airlock_queue_depth',
      help: '',
      type: 'gauge',
      values: [
        { labels: { state: 'waiting' }, value: values.waiting ?? 0 },
        { labels: { state: 'active' }, value: 7 },
      ],
    },
  ],
})

t.test('metrics become chart points: gauges as they are, counters as rates per second', async (t) => {
  t.equal(metricSum(snapshot(0, { submitted: 4 }), 'airlock_jobs_submitted_total'), 5, 'summed over labels')
  t.equal(
    metricSum(snapshot(0, { waiting: 3 }), 'airlock_queue_depth', { state: 'waiting' }),
    3,
    'only the labels asked for',
  )
  t.equal(metricSum(snapshot(0, {}), 'airlock_missing'), undefined)
  const book = new SeriesBook(CHARTS, 10_000)
  book.add(snapshot(1000, { submitted: 0, waiting: 2 }))
  t.same(book.series('submitted'), [], 'a counter needs two snapshots')
  book.add(snapshot(3000, { submitted: 10, waiting: 5 }))
  t.same(book.series('submitted'), [{ atMs: 3000, value: 5 }], '10 more in 2 s')
  book.add(snapshot(4000, { submitted: 2 }))
  t.same(
    book.series('submitted').at(-1),
    { atMs: 4000, value: 0 },
    'a counter that went down (a restart) is not a negative rate',
  )
  t.same(
    book.series('waiting').map((p) => p.value),
    [2, 5, 0],
  )
  book.add(snapshot(13_500, { waiting: 1 }))
  t.same(
    book.series('waiting').map((p) => p.atMs),
    [4000, 13_500],
    'points older than the window are dropped',
  )
  t.same(book.series('sandboxes'), [], 'a metric the snapshot lacks has no points')
})
