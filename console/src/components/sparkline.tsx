import type { Point } from '../metric-series.js'

const W = 240
const H = 48

/** A small line chart of the last minutes; drawn with SVG presentation attributes and classes, no style of its own. */
export function Sparkline({ label, unit, points }: { label: string; unit: string; points: readonly Point[] }) {
  const last = points.at(-1)?.value
  const max = Math.max(1, ...points.map((p) => p.value))
  const t0 = points[0]?.atMs ?? 0
  const span = Math.max(1, (points.at(-1)?.atMs ?? 0) - t0)
  const coords = points
    .map((p) => `${(((p.atMs - t0) / span) * W).toFixed(1)},${(H - 2 - (p.value / max) * (H - 4)).toFixed(1)}`)
    .join(' ')
  return (
    <figure class="chart" data-testid={`chart-${label}`}>
      <figcaption>
        <span>{label}</span>
        <strong>{last === undefined ? '—' : `${formatNumber(last)}${unit}`}</strong>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        preserveAspectRatio="none"
        role="img"
        aria-label={`${label} over the last minutes`}
      >
        {points.length > 1 ? (
          <polyline
            points={coords}
            fill="none"
            class="chart-line"
            stroke-width="2"
            vector-effect="non-scaling-stroke"
          />
        ) : null}
      </svg>
    </figure>
  )
}

export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n)
  return n < 10 ? n.toFixed(2) : n.toFixed(1)
}
