import type { MetricsSnapshot } from '../../sdk/src/admin-types.js'

/** One number a chart follows, read from a metrics snapshot. */
export interface Gauge {
  key: string
  label: string
  unit: string
  /** counter: shown as a rate per second between snapshots; gauge: as it is. */
  kind: 'counter' | 'gauge'
  read(snapshot: MetricsSnapshot): number | undefined
}

/** The sum of a metric's values whose labels include `labels` (and, for histograms, of one series). */
export function metricSum(
  snapshot: MetricsSnapshot,
  name: string,
  labels: Record<string, string> = {},
  series?: string,
): number | undefined {
  const family = snapshot.metrics.find((m) => m.name === name)
  if (!family) return undefined
  let sum = 0
  for (const v of family.values) {
    if (series !== undefined && v.metricName !== series) continue
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value
  }
  return sum
}

export const CHARTS: readonly Gauge[] = [
  {
    key: 'waiting',
    label: 'Queued jobs',
    unit: '',
    kind: 'gauge',
    read: (s) => metricSum(s, 'airlock_queue_depth', { state: 'waiting' }),
  },
  {
    key: 'oldest',
    label: 'Oldest queued',
    unit: 's',
    kind: 'gauge',
    read: (s) => metricSum(s, 'airlock_queue_oldest_age_seconds'),
  },
  {
    key: 'sandboxes',
    label: 'Sandboxes running',
    unit: '',
    kind: 'gauge',
    read: (s) => metricSum(s, 'airlock_active_sandboxes'),
  },
  {
    key: 'submitted',
    label: 'Jobs submitted',
    unit: '/s',
    kind: 'counter',
    read: (s) => metricSum(s, 'airlock_jobs_submitted_total'),
  },
  {
    key: 'finished',
    label: 'Jobs finished',
    unit: '/s',
    kind: 'counter',
    read: (s) => metricSum(s, 'airlock_jobs_finished_total'),
  },
  {
    key: 'rejected',
    label: 'Requests refused',
    unit: '/s',
    kind: 'counter',
    read: (s) => metricSum(s, 'airlock_requests_rejected_total'),
  },
  {
    key: 'streams',
    label: 'Stream clients',
    unit: '',
    kind: 'gauge',
    read: (s) => metricSum(s, 'airlock_stream_clients'),
  },
  {
    key: 'warm',
    label: 'Warm sandboxes idle',
    unit: '',
    kind: 'gauge',
    read: (s) => metricSum(s, 'airlock_warm_sandboxes', { state: 'idle' }),
  },
]

export interface Point {
  atMs: number
  value: number
}

/**
 * The last `windowMs` of each chart's numbers. Counters become rates between two
 * snapshots (a counter that went down, a restarted process, counts from zero).
 */
export class SeriesBook {
  private readonly points = new Map<string, Point[]>()
  private readonly last = new Map<string, Point>()

  constructor(
    private readonly charts: readonly Gauge[] = CHARTS,
    readonly windowMs = 10 * 60_000,
  ) {}

  add(snapshot: MetricsSnapshot, atMs = Date.parse(snapshot.at)): void {
    for (const chart of this.charts) {
      const value = chart.read(snapshot)
      if (value === undefined) continue
      let point: Point | undefined = { atMs, value }
      if (chart.kind === 'counter') {
        const before = this.last.get(chart.key)
        this.last.set(chart.key, { atMs, value })
        const seconds = before ? (atMs - before.atMs) / 1000 : 0
        point = before && seconds > 0 ? { atMs, value: Math.max(0, value - before.value) / seconds } : undefined
      }
      if (!point) continue
      const list = this.points.get(chart.key) ?? []
      list.push(point)
      while (list.length > 0 && list[0]!.atMs < atMs - this.windowMs) list.shift()
      this.points.set(chart.key, list)
    }
  }

  series(key: string): readonly Point[] {
    return this.points.get(key) ?? []
  }
}
