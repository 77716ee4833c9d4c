import type { Airlock } from '../../sdk/src/index.js'
import { PROBES, type Probe } from './probes.js'

export interface ProbeOutcome {
  name: string
  claim: string
  pass: boolean
  observed: string
  durationMs: number
}

/** Runs the probes one after another (two of them run two jobs at once by design). */
export async function runProbes(
  client: Airlock,
  probes: readonly Probe[] = PROBES,
  onResult?: (o: ProbeOutcome) => void,
): Promise<ProbeOutcome[]> {
  const outcomes: ProbeOutcome[] = []
  for (const probe of probes) {
    const t0 = Date.now()
    let outcome: ProbeOutcome
    try {
      const r = await probe.run(client)
      outcome = {
        name: probe.name,
        claim: probe.claim,
        pass: r.pass,
        observed: r.observed,
        durationMs: Date.now() - t0,
      }
    } catch (err) {
      // A probe that cannot even run proves nothing: it fails.
      outcome = {
        name: probe.name,
        claim: probe.claim,
        pass: false,
        observed: `could not run: ${(err as Error).message}`,
        durationMs: Date.now() - t0,
      }
    }
    outcomes.push(outcome)
    onResult?.(outcome)
  }
  return outcomes
}

export function selectProbes(only: string[] | undefined): Probe[] {
  if (!only || only.length === 0) return [...PROBES]
  const unknown = only.filter((o) => !PROBES.some((p) => p.name === o || p.name.startsWith(`${o}.`)))
  if (unknown.length > 0)
    throw new Error(`unknown probe(s): ${unknown.join(', ')}; known: ${PROBES.map((p) => p.name).join(', ')}`)
  return PROBES.filter((p) => only.some((o) => p.name === o || p.name.startsWith(`${o}.`)))
}

/** The human table: one row per probe, the verdict first. */
export function renderTable(outcomes: readonly ProbeOutcome[], width = 120): string {
  const nameWidth = Math.max(...outcomes.map((o) => o.name.length), 5)
  const lines = outcomes.map((o) => {
    const observed =
      o.observed.length > width - nameWidth - 12 ? `${o.observed.slice(0, width - nameWidth - 15)}...` : o.observed
    return `${o.pass ? 'PASS' : 'FAIL'}  ${o.name.padEnd(nameWidth)}  ${observed}`
  })
  const failed = outcomes.filter((o) => !o.pass)
  const summary =
    failed.length === 0
      ? `all ${outcomes.length} probes passed`
      : `${failed.length} of ${outcomes.length} probes FAILED: ${failed.map((o) => o.name).join(', ')}`
  return [`${'RESULT'.padEnd(4)}  ${'PROBE'.padEnd(nameWidth)}  OBSERVED`, ...lines, '', summary].join('\n')
}
