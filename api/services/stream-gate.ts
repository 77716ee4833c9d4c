import type { Socket } from 'node:net'
import type { FastifyReply } from 'fastify'
import { AirlockError, clientLeft } from '../../core/errors.js'
import { addressGroup, tenantAtGroup } from './address-group.js'

/**
 * The answer to a stream asked for without a WebSocket upgrade (Node did not hand the
 * request over as one: `request.ws` is false), before it takes a slot or spends a token.
 */
export function upgradeRequired(reply: FastifyReply): AirlockError {
  // A 426 names its protocol in Upgrade, a hop-by-hop header Connection must list; a
  // client that asked to close still gets its close.
  const close = /(^|[\s,])close($|[\s,])/i.test(String(reply.request.headers.connection ?? ''))
  reply.header('upgrade', 'websocket').header('connection', close ? 'upgrade, close' : 'upgrade')
  return new AirlockError(
    'AIRLOCK_ERR_UPGRADE_REQUIRED',
    'this is a WebSocket: ask with Connection: Upgrade and Upgrade: websocket, or read GET /v1/jobs/{id}/logs',
  )
}

/** An HTTP token (RFC 9110 5.6.2): what a subprotocol's name is. */
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
const SUBPROTOCOLS = new RegExp(`^${TOKEN}(?:[ \t]*,[ \t]*${TOKEN})*$`)

/** Whether ws takes a Sec-WebSocket-Protocol value: tokens by commas, none twice (ws's subprotocol.parse). Pure. */
export function validSubprotocols(value: string): boolean {
  if (!SUBPROTOCOLS.test(value)) return false
  const names = value.split(',').map((name) => name.trim())
  return new Set(names).size === names.length
}

/**
 * What ws would refuse in a handshake (RFC 6455 4.2.1), every check of its own it makes
 * (the method is the route's), before the stream takes a slot or spends a token: a token
 * spent on a handshake ws then refused was gone (the ninth review, with a malformed
 * Sec-WebSocket-Protocol). ws's own refusal (answered by the app's wsClientError handler)
 * stays the backstop.
 */
export function handshakeRefusal(reply: FastifyReply): AirlockError | undefined {
  const { headers } = reply.request
  const protocols = headers['sec-websocket-protocol']
  const problem =
    String(headers.upgrade).toLowerCase() !== 'websocket'
      ? 'Upgrade must be websocket'
      : !/^[+/0-9A-Za-z]{22}==$/.test(String(headers['sec-websocket-key']))
        ? 'missing or invalid Sec-WebSocket-Key'
        : headers['sec-websocket-version'] !== '13' && headers['sec-websocket-version'] !== '8'
          ? 'missing or invalid Sec-WebSocket-Version'
          : protocols !== undefined && !validSubprotocols(protocols)
            ? 'invalid Sec-WebSocket-Protocol (names by commas, each once)'
            : undefined
  if (!problem) return undefined
  reply.header('sec-websocket-version', '13').header('connection', 'close')
  return new AirlockError('AIRLOCK_ERR_BAD_REQUEST', `WebSocket handshake refused: ${problem}`)
}

/**
 * Caps the WebSocket streams one tenant holds open on this process, in all and from one
 * client address, so no tenant can drive Redis reads (or our memory) up by opening
 * thousands of watchers. A tenant's streams from an address are counted apart from other
 * tenants' from it, as its connections are: counted together, one tenant's streams took
 * every other tenant's behind the same NAT or proxy (found by review 22). A slot is taken
 * before the upgrade and given back when the connection closes, however it ends.
 */
export class StreamGate {
  private readonly byTenant = new Map<string, number>()
  private readonly byAddress = new Map<string, number>()

  constructor(
    private readonly maxPerTenant: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Takes a slot for the tenant, and for it at the address (an IPv6 /64 is one), until `socket` closes; 429 at a cap. */
  enter(tenant: string, clientAddress: string | undefined, socket: Socket): void {
    // A client that went while its handshake was checked (its job looked up in Redis) has
    // already closed: a slot taken now would wait for a close that came before, and never
    // be given back (found by the eleventh review: 64 resets locked a tenant, and its
    // address, out of streams until the process restarted).
    if (socket.destroyed) throw clientLeft('during its handshake')
    const address = tenantAtGroup(addressGroup(clientAddress ?? '?'), tenant)
    if ((this.byTenant.get(tenant) ?? 0) >= this.maxPerTenant) {
      throw new AirlockError(
        'AIRLOCK_ERR_TOO_MANY_STREAMS',
        `this tenant has ${this.maxPerTenant} streams open on this server, its most; close some first`,
      )
    }
    if ((this.byAddress.get(address) ?? 0) >= this.maxPerAddress) {
      throw new AirlockError(
        'AIRLOCK_ERR_TOO_MANY_STREAMS',
        `this tenant has ${this.maxPerAddress} streams open from this address on this server, its most; close some first`,
      )
    }
    bump(this.byTenant, tenant, 1)
    bump(this.byAddress, address, 1)
    socket.once('close', () => {
      bump(this.byTenant, tenant, -1)
      bump(this.byAddress, address, -1)
    })
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}
