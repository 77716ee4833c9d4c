import t from 'tap'
import { type BudgetHold, OutputBudget } from '../../api/services/output-budget.js'
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

t.test('in order by default; first fit lets a waiter that fits go ahead of one that does not', async (t) => {
  for (const firstFit of [false, true]) {
    const budget = new OutputBudget(1000, 500, 1, undefined, { firstFit })
    const held = await budget.take('a', 900)
    const big = budget.take('b', 500).catch(() => 'busy')
    let smallGot = false
    const small = budget.take('c', 50).then((h) => {
      smallGot = true
      return h
    })
    await new Promise((r) => setTimeout(r, 20))
    t.equal(smallGot, firstFit, firstFit ? 'first fit: the small one goes' : 'in order: the small one waits')
    held.release()
    const [b, c] = await Promise.all([big, small])
    if (typeof b !== 'string') b.release()
    c.release()
    t.equal(budget.inUse, 0)
  }
})

t.test('a waiter whose signal aborts leaves the line at once, refused, and those behind it go', async (t) => {
  const budget = new OutputBudget(1000, 5000, 1)
  const held = await budget.take('a', 900)
  const gone = new AbortController()
  const first = budget.take('b', 500, false, gone.signal).catch((e: unknown) => e)
  let nextGot = false
  const next = budget.take('c', 50).then((h) => {
    nextGot = true
    return h
  })
  gone.abort()
  t.ok(isAirlockError(await first), 'the aborted wait ends refused, well before its 5 s')
  await new Promise((r) => setTimeout(r, 10))
  t.ok(nextGot, 'the waiter behind it goes: in order, it had been held back only by the one that left')
  ;(await next).release()
  held.release()
  t.equal(budget.inUse, 0)
})

t.test('onShort is told only when the budget as a whole is short, not the tenant at its share', async (t) => {
  const told: [string, number][] = []
  const budget = new OutputBudget(1000, 100, 0.6, undefined, { onShort: (tenant, bytes) => told.push([tenant, bytes]) })
  const a = await budget.take('a', 500)
  const overShare = budget.take('a', 150).catch(() => undefined)
  const b = await budget.take('b', 450)
  const short = budget.take('b', 100).catch(() => undefined)
  await Promise.all([overShare, short])
  t.same(told, [['b', 100]])
  a.release()
  b.release()
})

t.test('a take whose signal has already aborted is refused at once and holds no place', async (t) => {
  const budget = new OutputBudget(1000, 5000, 1)
  const gone = new AbortController()
  gone.abort()
  const err = await budget.take('a', 10, false, gone.signal).catch((e: unknown) => e)
  t.ok(isAirlockError(err))
  t.equal(budget.inUse, 0)
})

t.test('a short waiter put first gets the room given back next, ahead of those before it', async (t) => {
  let asking: { first(): void } | undefined
  const budget = new OutputBudget(1000, 5000, 0.5, undefined, {
    firstFit: true,
    onShort: (tenant, _bytes, waiter) => {
      if (tenant === 'asker') asking = waiter
    },
  })
  const a = await budget.take('a', 500)
  const b = await budget.take('b', 450)
  const got: string[] = []
  const noting = (name: string) => (h: BudgetHold) => {
    got.push(name)
    return h
  }
  const before = budget.take('c', 100).then(noting('c'))
  const asker = budget.take('asker', 100).then(noting('asker'))
  t.ok(asking, 'told that the budget is short for the asker')
  asking!.first()
  a.release()
  const [c, held] = await Promise.all([before, asker])
  t.same(got, ['asker', 'c'], 'the room given back went to the asker first, though c asked before it')
  c.release()
  held.release()
  b.release()
  t.equal(budget.inUse, 0)
})
