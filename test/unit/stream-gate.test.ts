import { createRequire } from 'node:module'
import t from 'tap'
import { validSubprotocols } from '../../api/services/stream-gate.js'

// The stream route checks a handshake's Sec-WebSocket-Protocol before it spends a
// browser's token; ws checks it again after. The two must agree, or a token is spent on
// a handshake ws refuses: compared here with ws's own parser (not part of ws's exports).
const { parse } = createRequire(import.meta.url)('../../node_modules/ws/lib/subprotocol.js') as {
  parse: (value: string) => Set<string>
}

t.test("validSubprotocols takes exactly what ws's parser takes", async (t) => {
  const values = [
    'a',
    'a,b',
    'a, b',
    'a ,b',
    'a\t,\tb',
    'a , b , c',
    "!#$%&'*+-.^_`|~09AZaz",
    'a,,a b',
    'a,a',
    'a,b,a',
    'a b',
    ' a',
    'a ',
    '',
    ',',
    'a,',
    ',a',
    'é',
    'a;b',
    'a/b',
    'a\u0000',
  ]
  for (const value of values) {
    let ws: boolean
    try {
      parse(value)
      ws = true
    } catch {
      ws = false
    }
    t.equal(validSubprotocols(value), ws, JSON.stringify(value))
  }
})
