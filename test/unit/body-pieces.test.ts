import t from 'tap'
import { FREE_BODY_PIECES, MIN_BODY_PIECE_BYTES, tooFinelyCut } from '../../api/plugins/body-pieces.js'
import { type BudgetHold, OutputBudget } from '../../api/services/output-budget.js'
import { OutputWriter } from '../../api/services/output-writer.js'
import type { JobHead } from '../../core/job-store.js'

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

t.test(
  "an answer's pieces are each read in a turn, taken with no budget held, and left while the client takes one",
  async (t) => {
    const budget = new OutputBudget(1024)
    // Stands in for the Redis reads of JobOutputReader (the e2e tests read real ones): each
    // piece is read under a hold of the budget, given back once the next is asked for.
    const output = {
      async *pieces(_id: string, _place: unknown, _stream: unknown, take: (bytes: number) => Promise<BudgetHold>) {
        for (const piece of ['a', 'b', 'c']) {
          const hold = await take(100)
          try {
            log.push(held ? `read ${piece} in a turn` : `read ${piece} outside any turn`)
            yield piece
          } finally {
            hold.release()
          }
        }
      },
    }
    const writer = new OutputWriter(undefined as never, output as never, undefined as never, budget, 1000)
    const log: string[] = []
    let held = false
    const turn = {
      takeTurn: async () => {
        if (held) return
        // A turn waited for with budget held is how readers came to wait on each other.
        log.push(`take (holding ${budget.inUse} B)`)
        held = true
      },
      leaveTurn: () => {
        if (held) log.push('leave')
        held = false
      },
    }
    const view = { id: 'job_1', output: 'keys', tenant: 'alice' } as unknown as JobHead
    await writer.drain(
      writer.logText(view),
      async (piece) => {
        log.push(held ? `flush ${piece} in a turn` : `flush ${piece} (holding ${budget.inUse} B)`)
      },
      () => false,
      turn,
    )
    t.same(log, [
      'take (holding 0 B)',
      'read a in a turn',
      'leave',
      'flush a (holding 100 B)',
      'take (holding 0 B)',
      'read b in a turn',
      'leave',
      'flush b (holding 100 B)',
      'take (holding 0 B)',
      'read c in a turn',
      'leave',
      'flush c (holding 100 B)',
    ])
    t.equal(budget.inUse, 0, 'the last hold is given back')
  },
)
