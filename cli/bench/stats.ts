/** Percentiles and summaries of measured samples. Pure. */

export interface Summary {
  n: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

/** Nearest-rank percentile of sorted values (q in 0..1). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil(q * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export function summarize(values: readonly number[]): Summary | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return {
    n: sorted.length,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1]!,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  }
}

export interface Ratio {
  /** gVisor p50 / runc p50. */
  ofMedians: number
  /** p10 and p90 of the ratios of interleaved pairs (the i-th gVisor run over the i-th runc run). */
  spread: [number, number]
}

export function ratio(gvisor: readonly number[], runc: readonly number[]): Ratio | null {
  const g = summarize(gvisor)
  const r = summarize(runc)
  // A zero is below the clock's resolution (Kubernetes times containers to the whole
  // second): no ratio from it, rather than 0x or a billion x.
  if (!g || !r || r.p50 <= 0 || g.p50 <= 0) return null
  const pairs = Array.from(
    { length: Math.min(gvisor.length, runc.length) },
    (_, i) => [gvisor[i]!, runc[i]!] as const,
  ).filter(([a, b]) => a > 0 && b > 0)
  const perPair = pairs.map(([a, b]) => a / b).sort((a, b) => a - b)
  const spread: [number, number] =
    perPair.length > 0 ? [percentile(perPair, 0.1), percentile(perPair, 0.9)] : [g.p50 / r.p50, g.p50 / r.p50]
  return { ofMedians: g.p50 / r.p50, spread }
}
