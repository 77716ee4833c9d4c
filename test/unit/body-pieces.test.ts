import t from 'tap'
import { FREE_BODY_PIECES, MIN_BODY_PIECE_BYTES, tooFinelyCut } from '../../api/plugins/body-pieces.js'
import { OutputBudget } from '../../api/services/output-budget.js'
import { OutputWriter } from '../../api/services/output-writer.js'

t.test('a body is refused only once it has come in more pieces than any client cuts one into', async (t) => {
  t.notOk(tooFinelyCut(FREE_BODY_PIECES, FREE_BODY_PIECES), 'up to the free pieces, however small')
  t.ok(tooFinelyCut(FREE_BODY_PIECES + 1, FREE_BODY_PIECES + 1), 'past them, 1-byte pieces')
  t.notOk(
    tooFinelyCut(10_000, 10_000 * MIN_BODY_PIECE_BYTES),
    'pieces of the smallest average size, however many (a slow network)',
  )
  t.ok(tooFinelyCut(10_000, 10_000 * MIN_BODY_PIECE_BYTES - 1), 'just under it')
  t.notOk(tooFinelyCut(1_000, 2 * 1024 * 1024), 'a 2 MB body in 1,000 reads')
})

t.test("an answer's pieces are each read in a turn, and no turn is held while the client takes one", async (t) => {
  const writer = new OutputWriter(
    undefined as never,
    undefined as never,
    undefined as never,
    new OutputBudget(1024),
    1000,
  )
  const log: string[] = []
  let held = false
  const turn = {
    takeTurn: async () => {
      log.push('take')
      held = true
    },
    leaveTurn: () => {
      if (held) log.push('leave')
      held = false
    },
  }
  async function* parts() {
    for (const piece of ['a', 'b', 'c']) {
      log.push(held ? `read ${piece} in a turn` : `read ${piece} outside any turn`)
      yield piece
    }
  }
  await writer.drain(
    parts(),
    async (piece) => {
      log.push(held ? `flush ${piece} in a turn` : `flush ${piece}`)
    },
    () => false,
    turn,
  )
  t.same(log, [
    'take',
    'read a in a turn',
    'leave',
    'flush a',
    'take',
    'read b in a turn',
    'leave',
    'flush b',
    'take',
    'read c in a turn',
    'leave',
    'flush c',
    'take',
    'leave',
  ])
})
