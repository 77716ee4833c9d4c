import t from 'tap'
import { type Arriving, bodyToYield, YIELD_AFTER_MS, YIELD_BELOW_BYTES_PER_S } from '../../api/plugins/body-budget.js'

// Which body gives its room up when a tenant's body waits for room the process lacks.
const now = 100_000
const body = (tenant: string, ageMs: number, bytesPerS: number): Arriving => ({
  tenant,
  since: now - ageMs,
  received: () => (bytesPerS * ageMs) / 1000,
  yieldRoom: () => undefined,
})

t.test('a slow body of the tenant holding the most, old enough, gives its room up', async (t) => {
  const held: Record<string, number> = { big: 768 * 1024, mid: 512 * 1024, erin: 0 }
  const heldBy = (tenant: string) => held[tenant] ?? 0
  const slowBig = body('big', 2000, 100)
  const slowerBig = body('big', 3000, 10)
  const slowMid = body('mid', 5000, 1)
  const pick = bodyToYield([slowMid, slowBig, slowerBig], heldBy, 'erin', 8192, now)
  t.same(pick, { body: slowerBig }, 'the tenant holding the most, its slowest body')
  t.same(bodyToYield([slowMid], heldBy, 'erin', 8192, now), { body: slowMid })
})

t.test('no body gives its room up that is young, fast, the waiter own, or of a tenant holding no more', async (t) => {
  const held: Record<string, number> = { a: 256 * 1024, b: 256 * 1024 }
  const heldBy = (tenant: string) => held[tenant] ?? 0
  const young = body('a', YIELD_AFTER_MS - 1, 10)
  t.same(bodyToYield([young], heldBy, 'c', 1, now), { later: true }, 'young: maybe later')
  const fast = body('a', 5000, YIELD_BELOW_BYTES_PER_S + 1)
  t.same(bodyToYield([fast], heldBy, 'c', 1, now), { later: true }, 'arriving fast: maybe later, if it stalls')
  const slow = body('a', 5000, 10)
  t.same(bodyToYield([slow], heldBy, 'a', 1, now), { later: false }, "the waiter's own tenant's: never")
  t.same(
    bodyToYield([slow], heldBy, 'b', 1, now),
    { later: false },
    'a tenant holding no more than the waiter will: never (equal shares are not taken from each other)',
  )
  t.same(bodyToYield([slow], heldBy, 'c', 256 * 1024, now), { later: false }, 'nor when the waiter will hold as much')
  t.same(
    bodyToYield([slow], heldBy, 'c', 1, now),
    { body: slow },
    'a tenant holding nothing and asking for 1 byte: yes',
  )
})
