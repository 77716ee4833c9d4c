import t from 'tap'
import { OutputBudget } from '../../api/services/output-budget.js'
import { isAirlockError } from '../../core/errors.js'

t.test('one tenant gets at most its share; the others go ahead of its waiting readers', async (t) => {
  const budget = new OutputBudget(1000, 200, 0.25)
  const a1 = await budget.take('a', 250)
  t.equal(budget.inUse, 250)
  let a2Got = false
  const a2 = budget.take('a', 100).then((h) => {
    a2Got = true
    return h
  })
  const b = await budget.take('b', 250)
  t.equal(budget.inUse, 500, "b's reader went ahead of a's, which waits for a's share")
  t.notOk(a2Got)
  a1.release()
  const held = await a2
  t.ok(a2Got, "a's reader goes once a has room in its share")
  held.release()
  b.release()
  t.equal(budget.inUse, 0)
})

t.test('a hold can shrink to what a read really took, and gives back once', async (t) => {
  const budget = new OutputBudget(1000, 200, 1)
  const h = await budget.take('a', 800)
  h.shrink(100)
  t.equal(budget.inUse, 100)
  h.shrink(500)
  t.equal(budget.inUse, 100, 'shrinking never grows a hold')
  h.release()
  h.release()
  t.equal(budget.inUse, 0)
})

t.test('a reader that cannot get budget in time gets AIRLOCK_ERR_OUTPUT_BUSY, and its place is freed', async (t) => {
  const budget = new OutputBudget(1000, 50, 1)
  const all = await budget.take('a', 1000)
  const err = await budget.take('b', 10).catch((e: unknown) => e)
  t.ok(isAirlockError(err))
  t.equal((err as { code: string }).code, 'AIRLOCK_ERR_OUTPUT_BUSY')
  t.equal((err as { statusCode: number }).statusCode, 503)
  all.release()
  const next = await budget.take('b', 10)
  t.equal(budget.inUse, 10, 'the timed-out waiter no longer holds a place in the queue')
  next.release()
})
