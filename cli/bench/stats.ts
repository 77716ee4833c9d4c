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
  if (!g || !r || r.p50 <= 0) return null
  const pairs = Math.min(gvisor.length, runc.length)
  const perPair = Array.from({ length: pairs }, (_, i) => gvisor[i]! / Math.max(runc[i]!, 1e-9)).sort((a, b) => a - b)
  return { ofMedians: g.p50 / r.p50, spread: [percentile(perPair, 0.1), percentile(perPair, 0.9)] }
}
