/**
 * Soak: steady submissions and stream subscribers against an API process and a worker
 * process (separate, so each one's memory is measured), for a bounded time, on
 * loopback only. Exits 0 when there were no errors, p99 latencies stayed bounded and
 * memory stayed flat; 1 otherwise.
 *
 *   npm run bench:soak -- --seconds 300 --rate 3
 */
import { parseArgs } from 'node:util'
import { runSoak } from './soak-run.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    rate: { type: 'string', default: '3' },
  },
})

const result = await runSoak({
  seconds: Number(values.seconds),
  ratePerSecond: Number(values.rate),
  log: (line) => console.log(line),
})
console.log(JSON.stringify(result.summary, null, 2))
for (const failure of result.failures) console.log(`FAIL: ${failure}`)
console.log(result.failures.length === 0 ? 'soak passed' : 'soak FAILED')
process.exit(result.failures.length === 0 ? 0 : 1)
