import t from 'tap'
import { runSoak } from '../../bench/soak-run.js'

// The short soak CI runs; `npm run bench:soak -- --seconds 600` is the long one.
t.test('a short soak: steady submissions and subscribers, no errors, bounded p99, flat memory', async (t) => {
  const seconds = Number(process.env.AIRLOCK_SOAK_SECONDS ?? 20)
  const result = await runSoak({ seconds, ratePerSecond: 3 })
  t.same(result.failures, [], JSON.stringify(result.summary))
  t.ok((result.summary.jobs as number) >= seconds * 2, `ran ${result.summary.jobs} jobs`)
  t.equal(result.summary.errors, 0)
})
