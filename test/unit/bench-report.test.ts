import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { renderHtml } from '../../cli/bench/report.js'
import type { BenchReport } from '../../cli/bench/run-bench.js'
import { headlessChromium } from '../helper.js'

// Found by review 21: workload names (from workload files, which are shared) and routes went
// into the report's tables as HTML, and the report's policy lets inline script run.
t.test('the HTML report shows workload names as text, whatever they hold (rendered by Chromium)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-report-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const hostile = '<img src=x onerror="document.title=1">&amp;'
  const report: BenchReport = {
    schema: 'airlock-bench/1',
    startedAt: '2026-12-05T00:00:00Z',
    finishedAt: '2026-12-05T00:01:00Z',
    target: 'http://127.0.0.1:1',
    settings: { jobsPerRuntime: 1, concurrency: 1, direct: false, ingestSeconds: 1 },
    machine: { cpus: 2, memoryMb: 1024, kernel: 'x' },
    workloads: [
      {
        name: hostile,
        stresses: 's',
        runtime: 'bash',
        skipped: `<b>${hostile}</b>`,
        gvisor: null,
        runc: null,
        ratios: { startToEnd: null, endToEnd: null, submitToStart: null },
      },
    ],
    ingest: [
      { route: hostile, requestsPerSec: 1, latencyMs: { p50: 1, p90: 1, p99: 1, max: 1 }, non2xx: 0, errors: 0 },
    ],
  }
  const html = join(dir, 'report.html')
  await writeFile(html, renderHtml(report))
  const { stdout: dom } = await promisify(execFile)(
    'chromium',
    [...headlessChromium(join(dir, 'chromium')), '--dump-dom', `file://${html}`],
    { maxBuffer: 16 * 1024 * 1024, timeout: 60_000 },
  )
  t.match(dom, /data-rendered=/, 'the script ran')
  t.notMatch(dom, /<img|<b>/, 'no element made of a name')
  const shown = dom.split('&lt;img src=x onerror="document.title=1"&gt;&amp;amp;').length - 1
  t.equal(shown, 3, 'the name shown as text: as a workload, in its skip reason, and as a route')
})
