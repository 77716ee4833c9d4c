import t from 'tap'
import { FAILED_KEYS_PER_SECOND, FailedKeys } from '../../api/services/failed-keys.js'

t.test("an address's made-up keys are looked up up to its allowance a second, a key found lately always", async (t) => {
  let now = 5_000
  const keys = new FailedKeys(() => now)
  keys.found('good')
  for (let i = 0; i < FAILED_KEYS_PER_SECOND; i++) {
    t.ok(keys.mayLookUp('127.0.0.7', `guess${i}`), `guess ${i} is looked up`)
    keys.failed('127.0.0.7', `guess${i}`)
  }
  t.notOk(keys.mayLookUp('127.0.0.7', 'guess-next'), 'past the allowance: not looked up')
  t.ok(keys.mayLookUp('127.0.0.7', 'good'), 'a key found lately still is, from the same address')
  t.ok(keys.mayLookUp('127.0.0.8', 'guess-next'), 'another address keeps its own allowance')
  t.notOk(keys.mayLookUp('::ffff:127.0.0.7', 'guess-next'), 'the same address in IPv6 form is the same')
  // How addresses are grouped (an IPv6 /64 is one) is address-group.test.ts's.
  now += 1000
  t.ok(keys.mayLookUp('127.0.0.7', 'guess-next'), 'the next second, a new allowance')
  // Found by review 25's live probe: a key revoked after it was found was looked up for good.
  keys.failed('127.0.0.9', 'good')
  for (let i = 0; i < FAILED_KEYS_PER_SECOND; i++) keys.failed('127.0.0.9', `again${i}`)
  t.notOk(keys.mayLookUp('127.0.0.9', 'good'), 'a found key that then opens nothing is no longer exempt')
})
