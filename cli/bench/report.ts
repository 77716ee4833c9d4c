import type { BenchReport, RuntimeResult } from './run-bench.js'

export const ms = (v: number | null | undefined) =>
  v === null || v === undefined || Number.isNaN(v) ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1)
const x = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${v.toFixed(2)}x`)

/** A terminal table's lines: each column as wide as its widest cell. */
export function alignColumns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  )
}

/** The terminal table: one row per workload and runtime. */
export function renderTable(report: BenchReport): string {
  const rows: string[][] = [
    [
      'WORKLOAD',
      'RUNTIME',
      'OK',
      'START p50',
      'RUN p50',
      'RUN p90',
      'E2E p50',
      'E2E p90',
      'E2E p99',
      'E2E max',
      'JOBS/S',
      'DIRECT p50',
      'SVC +',
      'RAW p50',
      'E2E/RAW (WARM, COLD)',
      'WARM',
      'E2E p50 WARM',
      'E2E p50 COLD',
      'EXIT>RESULT p50',
      'EXIT>RESULT p99',
      'GVISOR/RUNC (run)',
    ],
  ]
  for (const w of report.workloads) {
    if (w.skipped) {
      rows.push([w.name, '-', '-', ...Array.from({ length: 17 }, () => ''), `skipped: ${w.skipped}`])
      continue
    }
    for (const [name, r] of [
      ['gvisor', w.gvisor],
      ['runc', w.runc],
    ] as [string, RuntimeResult | null][]) {
      if (!r) continue
      const ratioCell =
        name === 'gvisor' && w.ratios.startToEnd
          ? `${x(w.ratios.startToEnd.ofMedians)} (${x(w.ratios.startToEnd.spread[0])}-${x(w.ratios.startToEnd.spread[1])})`
          : ''
      rows.push([
        w.name,
        name,
        `${r.samples.endToEndMs.length}/${Object.values(r.statuses).reduce((a, b) => a + b, 0)}`,
        ms(r.submitToStartMs?.p50),
        ms(r.startToEndMs?.p50),
        ms(r.startToEndMs?.p90),
        ms(r.endToEndMs?.p50),
        ms(r.endToEndMs?.p90),
        ms(r.endToEndMs?.p99),
        ms(r.endToEndMs?.max),
        r.throughputJobsPerS === null ? '-' : r.throughputJobsPerS.toFixed(2),
        ms(r.directMs?.p50),
        ms(r.serviceOverheadMs),
        ms(r.rawMs?.p50),
        r.endToEndOverRaw === null
          ? '-'
          : `${x(r.endToEndOverRaw)} (${x(r.byStart.warm.overRaw)}, ${x(r.byStart.cold.overRaw)})`,
        `${r.byStart.warm.jobs}/${r.byStart.warm.jobs + r.byStart.cold.jobs}`,
        ms(r.byStart.warm.endToEndMs?.p50),
        ms(r.byStart.cold.endToEndMs?.p50),
        ms(r.exitToResultMs?.p50),
        ms(r.exitToResultMs?.p99),
        ratioCell,
      ])
    }
  }
  const lines = alignColumns(rows)
  lines.push(
    '',
    'times in ms; START = accepted to program start; RUN = program start to end; E2E = submit to result at the client;',
  )
  lines.push(
    'DIRECT = the same job run by the executor on this machine without API or queue, cold, as many at once as E2E (-c); SVC + = E2E p50 - DIRECT p50',
  )
  lines.push(
    "RAW = a raw `runsc run` of the same program in the same image (runsc spec's bundle, none of Airlock's sandbox), run beside DIRECT; E2E/RAW = E2E p50 / RAW p50, all jobs and warm and cold apart",
  )
  lines.push("EXIT>RESULT = the program's end to its result stored (the job's timings.exitToResultMs)")
  lines.push(
    "WARM = jobs that took a sandbox booted before they arrived (the worker's warm pool), of all; E2E p50 WARM / COLD = each kind alone",
  )
  for (const i of report.ingest) {
    const jobs = i.jobsPerSec === undefined ? '' : ` (${i.jobsPerSec.toFixed(0)} jobs/s accepted)`
    lines.push(
      `ingest ${i.route}: ${i.requestsPerSec.toFixed(0)} req/s${jobs}, latency p50 ${i.latencyMs.p50} ms p99 ${i.latencyMs.p99} ms, non-2xx ${i.non2xx}`,
    )
  }
  // Fair share by default: a tenant without quotas of its own is held to the server's
  // default submissions per second and queued jobs, which an ingest run passes at once.
  if (report.ingest.some((i) => i.route.startsWith('POST') && i.non2xx > 0)) {
    lines.push(
      "  (non-2xx submissions are this tenant's rate and queue quotas answering 429: give the bench tenant its own, e.g. airlock tenants quotas NAME --submits-per-second 100000 --max-queued 1000000)",
    )
  }
  return lines.join('\n')
}

/**
 * A self-contained HTML report: the JSON embedded, charts drawn as SVG by a small
 * script in the page. No network, no external scripts.
 */
export function renderHtml(report: BenchReport): string {
  const data = JSON.stringify(report).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Airlock bench: gVisor vs runc</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.legend span{display:inline-block;margin-right:16px}.g{color:#7b3fe4}.r{color:#2a9d8f}.muted{color:#777}
</style></head><body>
<h1>Airlock bench: what gVisor costs next to runc</h1>
<p id="meta" class="muted"></p>
<p class="legend"><span class="g">&#9679; gVisor (runsc)</span><span class="r">&#9679; runc</span></p>
<h2>gVisor / runc, program run time (p50; bar: p10-p90 of interleaved pairs)</h2>
<div id="ratios"></div>
<h2>End-to-end latency per workload (each dot one job; line: p50)</h2>
<div id="latency"></div>
<h2>Numbers</h2>
<div id="tables"></div>
<h2>API ingest</h2>
<div id="ingest"></div>
<script id="bench-data" type="application/json">${data}</script>
<script>
(function () {
  var report = JSON.parse(document.getElementById('bench-data').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) { return v === null || v === undefined ? '-' : (v >= 100 ? v.toFixed(0) : v.toFixed(1)); }
  document.getElementById('meta').textContent = report.target + ' - ' + report.startedAt + ' - ' + report.machine.cpus + ' cpus, ' +
    report.machine.memoryMb + ' MiB, kernel ' + report.machine.kernel + ' - ' + report.settings.jobsPerRuntime + ' jobs per runtime, concurrency ' + report.settings.concurrency;
  var measured = report.workloads.filter(function (w) { return !w.skipped; });

  var rows = measured.filter(function (w) { return w.ratios.startToEnd; });
  var maxR = Math.max.apply(null, [2].concat(rows.map(function (w) { return w.ratios.startToEnd.spread[1]; })));
  var svg = el('svg', { width: 900, height: 40 + rows.length * 28, class: 'chart', 'data-chart': 'ratios' }, document.getElementById('ratios'));
  var x0 = 160, w = 680;
  function sx(v) { return x0 + (v / maxR) * w; }
  el('line', { x1: sx(1), x2: sx(1), y1: 10, y2: 20 + rows.length * 28, stroke: '#999', 'stroke-dasharray': '4 3' }, svg);
  el('text', { x: sx(1) + 4, y: 18, fill: '#777', 'font-size': 11 }, svg, '1x (no cost)');
  rows.forEach(function (wl, i) {
    var y = 30 + i * 28, r = wl.ratios.startToEnd;
    el('text', { x: 0, y: y + 12, 'font-size': 12 }, svg, wl.name);
    el('rect', { x: x0, y: y, width: Math.max(1, sx(r.ofMedians) - x0), height: 16, fill: '#7b3fe4', opacity: 0.75, class: 'ratio-bar' }, svg);
    el('line', { x1: sx(r.spread[0]), x2: sx(r.spread[1]), y1: y + 8, y2: y + 8, stroke: '#222', 'stroke-width': 2 }, svg);
    el('text', { x: sx(Math.max(r.ofMedians, r.spread[1])) + 6, y: y + 12, 'font-size': 12 }, svg, r.ofMedians.toFixed(2) + 'x');
  });

  var latency = document.getElementById('latency');
  measured.forEach(function (wl) {
    var all = wl.gvisor.samples.endToEndMs.concat(wl.runc.samples.endToEndMs);
    var max = Math.max.apply(null, all.concat([1]));
    var s = el('svg', { width: 900, height: 90, class: 'chart', 'data-chart': 'latency-' + wl.name }, latency);
    el('text', { x: 0, y: 14, 'font-size': 13, 'font-weight': 'bold' }, s, wl.name + ' (' + wl.stresses + ')');
    [['gvisor', '#7b3fe4', 40], ['runc', '#2a9d8f', 66]].forEach(function (rt) {
      var res = wl[rt[0]];
      el('text', { x: 0, y: rt[2] + 4, 'font-size': 11 }, s, rt[0]);
      res.samples.endToEndMs.forEach(function (v) {
        el('circle', { cx: 60 + (v / max) * 780, cy: rt[2], r: 4, fill: rt[1], opacity: 0.6, class: 'sample' }, s);
      });
      if (res.endToEndMs) {
        var px = 60 + (res.endToEndMs.p50 / max) * 780;
        el('line', { x1: px, x2: px, y1: rt[2] - 9, y2: rt[2] + 9, stroke: '#000', 'stroke-width': 2 }, s);
      }
    });
    el('text', { x: 840, y: 84, 'font-size': 10, fill: '#777', 'text-anchor': 'end' }, s, fmt(max) + ' ms');
  });

  // Names come from workload files, which travel: every text goes into the tables escaped.
  function esc(v) { return String(v).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); }
  var t = '<table><tr><th>workload</th><th>runtime</th><th>start p50</th><th>run p50</th><th>run p90</th><th>e2e p50</th><th>e2e p90</th><th>e2e p99</th><th>e2e max</th><th>jobs/s</th><th>direct p50</th><th>service +</th><th>raw runsc p50</th><th>e2e / raw</th><th>exit to result p50</th></tr>';
  report.workloads.forEach(function (wl) {
    if (wl.skipped) { t += '<tr><td>' + esc(wl.name) + '</td><td colspan="14" class="muted">skipped: ' + esc(wl.skipped) + '</td></tr>'; return; }
    ['gvisor', 'runc'].forEach(function (rt) {
      var r = wl[rt];
      t += '<tr><td>' + esc(wl.name) + '</td><td>' + rt + '</td><td>' + fmt(r.submitToStartMs && r.submitToStartMs.p50) + '</td><td>' + fmt(r.startToEndMs && r.startToEndMs.p50) +
        '</td><td>' + fmt(r.startToEndMs && r.startToEndMs.p90) + '</td><td>' + fmt(r.endToEndMs && r.endToEndMs.p50) + '</td><td>' + fmt(r.endToEndMs && r.endToEndMs.p90) +
        '</td><td>' + fmt(r.endToEndMs && r.endToEndMs.p99) + '</td><td>' + fmt(r.endToEndMs && r.endToEndMs.max) + '</td><td>' + (r.throughputJobsPerS === null ? '-' : r.throughputJobsPerS.toFixed(2)) +
        '</td><td>' + fmt(r.directMs && r.directMs.p50) + '</td><td>' + fmt(r.serviceOverheadMs) + '</td><td>' + fmt(r.rawMs && r.rawMs.p50) + '</td><td>' + (r.endToEndOverRaw === null || r.endToEndOverRaw === undefined ? '-' : r.endToEndOverRaw.toFixed(2) + 'x') + '</td><td>' + fmt(r.exitToResultMs && r.exitToResultMs.p50) + '</td></tr>';
    });
  });
  document.getElementById('tables').innerHTML = t + '</table><p class="muted">ms. start: accepted to program start; run: program start to end; e2e: submit to result at the client; direct: the same job run by the executor without API or queue, as many at once; raw runsc: a raw runsc run of the same program in the same image, without Airlock&#39;s sandbox; exit to result: from the end of the program to its result stored.</p>';
  var ing = '<table><tr><th>route</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>non-2xx</th></tr>';
  report.ingest.forEach(function (i) { ing += '<tr><td>' + esc(i.route) + '</td><td>' + i.requestsPerSec.toFixed(0) + '</td><td>' + i.latencyMs.p50 + '</td><td>' + i.latencyMs.p90 + '</td><td>' + i.latencyMs.p99 + '</td><td>' + i.non2xx + '</td></tr>'; });
  document.getElementById('ingest').innerHTML = report.ingest.length ? ing + '</table>' : '<p class="muted">not run</p>';
  document.body.setAttribute('data-rendered', String(document.querySelectorAll('svg.chart').length));
})();
</script></body></html>
`
}
