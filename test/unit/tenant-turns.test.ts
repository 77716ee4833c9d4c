import t from 'tap'
import { TenantTurns } from '../../api/services/tenant-turns.js'

const tick = () => new Promise((r) => setImmediate(r))

t.test("a tenant's requests past its turns wait in order; another tenant's do not wait for them", async (t) => {
  const turns = new TenantTurns(2)
  const [a1, a2] = [await turns.enter('alice'), await turns.enter('alice')]
  const order: string[] = []
  const inLine = (name: string) =>
    turns.enter('alice').then((leave) => {
      order.push(name)
      return leave
    })
  const a3 = inLine('a3')
  const a4 = inLine('a4')
  await tick()
  t.same(order, [], 'past two, alice waits')
  t.equal(turns.waitingFor('alice'), 2)
  const b1 = await turns.enter('bob')
  t.ok(b1, "bob's request has its turn at once")
  a1()
  a1()
  await tick()
  t.same(order, ['a3'], 'a turn given back passes to the first in line, once however often it is given back')
  a2()
  await tick()
  t.same(order, ['a3', 'a4'], 'then the next')
  t.equal(turns.waitingFor('alice'), 0)
  ;(await a3)()
  ;(await a4)()
  b1()
  const again = [await turns.enter('alice'), await turns.enter('alice')]
  t.equal(again.length, 2, 'every turn came back: two at once again')
  for (const leave of again) leave()
})

t.test('0 turns means no waiting', async (t) => {
  const turns = new TenantTurns(0)
  const many = await Promise.all(Array.from({ length: 100 }, () => turns.enter('alice')))
  t.equal(many.length, 100)
  t.equal(turns.waitingFor('alice'), 0)
})
