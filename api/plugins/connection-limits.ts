import { readFileSync } from 'node:fs'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { Logger } from 'pino'
import { compile } from '@fastify/proxy-addr'
import type { ErrorCode } from '../../core/errors.js'
import type { Metrics } from '../../core/metrics.js'
import { answerRaw } from './error-handler.js'
import { addressGroup, tenantAtGroup } from '../services/address-group.js'

/** Descriptors kept for everything but client connections: Redis, sandboxes, files. */
export const RESERVED_DESCRIPTORS = 1024

/** The soft open-file limit of this process, from /proc (Node has no getrlimit); undefined when unknown. */
export function openFileLimit(limits = '/proc/self/limits'): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(limits, 'utf8'))
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/**
 * How many connections the API may hold: the setting, but never so many that client
 * sockets leave the process without descriptors for its own work (the worker's
 * sandboxes and isolation checks share the process in the embedded default). Pure.
 */
export function connectionCap(setting: number, fileLimit: number | undefined): number {
  if (fileLimit === undefined) return setting
  return Math.max(16, Math.min(setting, fileLimit - RESERVED_DESCRIPTORS))
}

/** AIRLOCK_TRUST_PROXY -> what fastify's trustProxy takes: false, or the list. */
export function trustedProxies(raw: string): false | string[] {
  const list = raw
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
  return list.length > 0 ? list : false
}

export interface ConnectionLimitOptions {
  maxConnections: number
  maxPerAddress: number
  /** Connections one tenant's requests may hold (a connection is its first authenticated request's tenant's). */
  maxPerTenant: number
  /** AIRLOCK_TRUST_PROXY: proxies' own connections carry many clients, so no per-address cap for them. */
  trustProxy: string
  /** How long a connection handed over as an Upgrade has to become a WebSocket before it is closed. */
  upgradeTimeoutMs: number
  /** How long a client may leave its answers untaken (none of their bytes) before its connection is cut. */
  slowReaderMs: number
  log: Logger | FastifyBaseLogger
  metrics: Metrics
}

/**
 * Tells the limits whose a connection is, once a request on it has authenticated:
 * `owner` is its tenant (undefined for an operator, counted as nobody's). Undefined when
 * it may be; else why not (the tenant holds its most connections, in all or from this
 * address): the request is to be refused and the connection closed. A connection keeps
 * its first owner; one the limits do not hold (an injected request) may always be claimed.
 */
export type ClaimConnection = (socket: Socket, owner: string | undefined) => string | undefined

export interface ConnectionLimits {
  claim: ClaimConnection
  /** The connection is a WebSocket now (its handshake is done): no longer an upgrade waiting. */
  becameWebSocket(socket: Socket): void
}

/**
 * Requests one connection may have in the handlers at once. HTTP/1.1 lets a client send
 * many before reading an answer, and Node hands every one it has read to the handlers
 * at once: 3,000 pipelined reads of a big job on one socket held 4 GB. The others wait,
 * in order, unhandled.
 */
export const MAX_IN_FLIGHT_PER_CONNECTION = 4
/**
 * Requests one connection may have waiting behind those; past it the connection is closed.
 * Each waiting request holds its headers (up to 16 KB): at 64, 200 keyless connections of
 * pipelined requests with 15 KB of headers took the process from 311 to 559 MB (eighth
 * review). Clients that pipeline at all send a few.
 */
export const MAX_WAITING_PER_CONNECTION = 12

/** A socket closes on its error by itself: listening is only so that it is not thrown. */
function ignoreSocketError(): void {}

/** The answer to a connection over a cap, written before any of its request is read. */
function refuse(socket: Socket, message: string): void {
  const body = JSON.stringify({ statusCode: 503, code: 'AIRLOCK_ERR_TOO_MANY_CONNECTIONS', message })
  socket.end(
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`,
  )
  // A peer that never reads must not keep even a refused socket.
  setTimeout(() => socket.destroy(), 1000).unref()
}

interface Connection {
  address: string
  /** What the per-address cap counts it under (addressGroup). */
  group: string
  /** Whose it is once claimed ('' for nobody's: an operator's, or a proxy's carrying many). */
  owner?: string
  /**
   * What the per-address cap counts it under: its address group until a tenant claims it,
   * then its address group and tenant. One tenant cannot take the allowance of an address
   * it shares with others (a NAT, an office: found by the seventh review, alice's 200
   * connections left bob's from the same address refused).
   */
  counted: string
  /** Bytes of its answers the client has taken, when last looked at (see the watch). */
  taken?: number
  /** Since when its answers have waited on the client with none of them taken. */
  stalledSince?: number
}

/**
 * Caps the connections the server holds, in all, per client address (an IPv6 /64 is one)
 * and per tenant, whether or not they ever authenticate. At the cap of an address, or in all, the oldest
 * connection (of the address's) that has not yet authenticated is closed to make room:
 * connections opened and never used (slow headers, idle) cannot keep out the callers
 * with keys, who authenticate within their first request. Only when every such
 * connection has authenticated is a new one refused (503 AIRLOCK_ERR_TOO_MANY_CONNECTIONS). Node's own `maxConnections` stays a little
 * above as a backstop: past it, connections are dropped unanswered.
 */
export function limitConnections(
  server: Server,
  {
    maxConnections,
    maxPerAddress,
    maxPerTenant,
    trustProxy,
    upgradeTimeoutMs,
    slowReaderMs,
    log,
    metrics,
  }: ConnectionLimitOptions,
): ConnectionLimits {
  const cap = connectionCap(maxConnections, openFileLimit())
  const proxies = trustedProxies(trustProxy)
  const isProxy = proxies ? compile(proxies) : () => false
  // One warning a second at most, with how many were refused: an anonymous flood of
  // connections must not become a flood of log lines.
  let refused = 0
  let lastWarning = Number.NEGATIVE_INFINITY
  server.maxConnections = cap + 64
  const byAddress = new Map<string, number>()
  const byTenant = new Map<string, number>()
  const connections = new Map<Socket, Connection>()
  // Not yet authenticated, oldest first (a Set keeps insertion order), in all and by address.
  const anonymous = new Set<Socket>()
  const anonymousFrom = new Map<string, Set<Socket>>()
  const authenticated = (socket: Socket, group: string) => {
    anonymous.delete(socket)
    const from = anonymousFrom.get(group)
    if (from?.delete(socket) && from.size === 0) anonymousFrom.delete(group)
  }
  // Decided before the HTTP server sees the socket: a refused connection never gets a
  // parser, so nothing it sends is ever read as a request.
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean
  const pipelines = new WeakMap<Socket, Pipeline>()
  const webSockets = new WeakSet<Socket>()
  // `counted`: the code to count the refusal under; false when it is a request's, which
  // the error handler counts.
  const warn = (
    fields: Record<string, unknown>,
    message: string,
    counted: ErrorCode | false = 'AIRLOCK_ERR_TOO_MANY_CONNECTIONS',
  ) => {
    if (counted) metrics.rejectedRequests.inc({ code: counted })
    refused++
    if (performance.now() - lastWarning >= 1000) {
      log.warn({ ...fields, refused }, message)
      lastWarning = performance.now()
      refused = 0
    }
  }
  const count = (map: Map<string, number>, key: string, by: number) => {
    const n = (map.get(key) ?? 0) + by
    if (n <= 0) map.delete(key)
    else map.set(key, n)
  }
  // Once per connection, on its close or when it is evicted (before its close arrives).
  const release = (socket: Socket) => {
    const connection = connections.get(socket)
    if (!connection) return
    connections.delete(socket)
    authenticated(socket, connection.group)
    count(byAddress, connection.counted, -1)
    if (connection.owner) count(byTenant, connection.owner, -1)
  }
  server.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === 'request') {
      const [req, res] = args as [IncomingMessage, ServerResponse]
      let pipeline = pipelines.get(req.socket)
      if (!pipeline) {
        pipeline = new Pipeline((rq, rs) => emit('request', rq, rs))
        pipelines.set(req.socket, pipeline)
        req.socket.once('close', () => pipeline!.close())
      }
      if (!pipeline.add(req, res)) {
        warn({ remoteAddress: req.socket.remoteAddress }, 'connection closed: too many pipelined requests')
        req.socket.destroy()
      }
      return true
    }
    if (event === 'upgrade') return upgrade(args[1] as Socket) || emit(event, ...args)
    if (event !== 'connection') return emit(event, ...args)
    const socket = args[0] as Socket
    // A socket's error (the client's reset, most often) is thrown when nothing listens,
    // and that ends the process. Node's HTTP server listens only on the sockets it is
    // given, and stops before it hands one over as an Upgrade: found by the eleventh
    // review, a keyless client that reset the connections the per-address cap refused
    // took the API down. Node closes a socket on its error; nothing else is to be done.
    socket.on('error', ignoreSocketError)
    const address = socket.remoteAddress ?? '?'
    const group = addressGroup(address)
    if ((byAddress.get(group) ?? 0) >= maxPerAddress && !isProxy(address, 0)) {
      // The address's oldest connection that has not authenticated makes room, as at the
      // cap in all: refused instead, one keyless client at an address (a NAT, an office)
      // kept out every tenant behind it (found by review 24).
      const [oldest] = anonymousFrom.get(group) ?? []
      if (oldest === undefined) {
        warn({ remoteAddress: address }, 'connections refused: over the per-address cap')
        refuse(socket, 'this address has its most connections open; close some first')
        return true
      }
      warn({ remoteAddress: address }, "the address's oldest unauthenticated connection closed to make room")
      release(oldest)
      oldest.destroy()
    }
    if (connections.size >= cap) {
      const [oldest] = anonymous
      if (oldest === undefined) {
        warn({ remoteAddress: address, open: connections.size }, 'connections refused: over the connection cap')
        refuse(socket, 'the server has its most connections open; retry shortly')
        return true
      }
      warn({ remoteAddress: oldest.remoteAddress }, 'oldest unauthenticated connection closed to make room')
      release(oldest)
      oldest.destroy()
    }
    connections.set(socket, { address, group, counted: group })
    anonymous.add(socket)
    anonymousFrom.set(group, (anonymousFrom.get(group) ?? new Set()).add(socket))
    count(byAddress, group, 1)
    socket.once('close', () => release(socket))
    return emit(event, ...args)
  }) as typeof server.emit

  // A connection whose client takes none of what it is sent holds its socket and whatever
  // its answers read from (a static file's descriptor each: up to 5 descriptors for one
  // connection), and Node times out requests, not answers: found by the eighth review,
  // 200 keyless connections that never read held 1,000 descriptors for as long as they
  // stayed. Job output has its own cut (a piece not taken within the same limit); this
  // is every other answer's. A stream's WebSocket is its session's to close (4001).
  const watch = setInterval(() => {
    const now = performance.now()
    for (const [socket, connection] of connections) {
      if (webSockets.has(socket) || socket.destroyed || socket.writableLength === 0) {
        connection.stalledSince = undefined
        continue
      }
      // What has left for the kernel: written, less what still waits in Node's buffers.
      const taken = (socket.bytesWritten ?? 0) - socket.writableLength
      if (connection.stalledSince === undefined || taken !== connection.taken) {
        connection.taken = taken
        connection.stalledSince = now
      } else if (now - connection.stalledSince >= slowReaderMs) {
        warn({ remoteAddress: connection.address }, 'connection cut: its client took none of its answer', false)
        socket.destroy()
      }
    }
  }, 1000).unref()
  server.once('close', () => clearInterval(watch))

  /**
   * Node takes its parser and timeouts off a connection it hands over as an Upgrade: one
   * that does not become a WebSocket is closed here, or nothing would ever close it. An
   * Upgrade sent behind other requests on its connection (their answers still to come)
   * cannot take the connection over: it is answered 400 once they have been. True when
   * the upgrade was refused here.
   */
  const upgrade = (socket: Socket): boolean => {
    const pipeline = pipelines.get(socket)
    if (!pipeline || pipeline.idle) {
      const timer = setTimeout(() => {
        if (!webSockets.has(socket)) socket.destroy()
      }, upgradeTimeoutMs).unref()
      socket.once('close', () => clearTimeout(timer))
      return false
    }
    // The answers ahead of it may take their time (a request that waits for its job):
    // they are sent whole, then this one (answerRaw closes the connection).
    warn(
      { remoteAddress: socket.remoteAddress },
      'upgrade refused: it came behind other requests',
      'AIRLOCK_ERR_BAD_REQUEST',
    )
    pipeline.whenIdle(() =>
      answerRaw(
        socket,
        400,
        'AIRLOCK_ERR_BAD_REQUEST',
        'an Upgrade must not come behind other requests on its connection; open a new connection for the WebSocket',
      ),
    )
    return true
  }

  const claim: ClaimConnection = (socket, owner) => {
    const connection = connections.get(socket)
    if (!connection || connection.owner !== undefined) return undefined
    // A proxy's connection carries many tenants' requests: it is nobody's.
    const tenant = owner === undefined || isProxy(connection.address, 0) ? '' : owner
    // A tenant's connections from an address are counted apart from the address's others.
    const counted = tenant ? tenantAtGroup(connection.group, tenant) : connection.group
    if (tenant && (byTenant.get(tenant) ?? 0) >= maxPerTenant) {
      warn({ tenant }, 'connection closed: its tenant holds its most connections', false)
      return 'this tenant holds its most connections open (AIRLOCK_MAX_CONNECTIONS_PER_TENANT); close some first'
    }
    if (tenant && (byAddress.get(counted) ?? 0) >= maxPerAddress) {
      warn(
        { tenant, remoteAddress: connection.address },
        'connection closed: its tenant holds its most from here',
        false,
      )
      return 'this tenant holds its most connections open from this address; close some first'
    }
    authenticated(socket, connection.group)
    connection.owner = tenant
    if (tenant) {
      count(byTenant, tenant, 1)
      count(byAddress, connection.counted, -1)
      count(byAddress, counted, 1)
      connection.counted = counted
    }
    return undefined
  }
  return { claim, becameWebSocket: (socket) => webSockets.add(socket) }
}

type Handle = (req: IncomingMessage, res: ServerResponse) => void

/**
 * One connection's requests: at most MAX_IN_FLIGHT_PER_CONNECTION handled at once, the
 * rest held in order (their answers go out in order anyway) until one ends.
 */
class Pipeline {
  private closed = false
  /** The answers being worked on, in order; the first owns the socket, the rest wait for it. */
  private readonly answers = new Set<ServerResponse>()
  private readonly waiting: [IncomingMessage, ServerResponse][] = []
  private idleCallbacks: (() => void)[] = []

  /** Every request taken has been answered (or its connection is gone). */
  get idle(): boolean {
    return this.closed || (this.answers.size === 0 && this.waiting.length === 0)
  }

  /** Runs `callback` once every request taken so far has been answered; never if the connection goes first. */
  whenIdle(callback: () => void): void {
    if (this.idle) callback()
    else this.idleCallbacks.push(callback)
  }

  constructor(private readonly handle: Handle) {}

  /** Takes a request; false when the connection has too many waiting and is to be closed. */
  add(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.answers.size < MAX_IN_FLIGHT_PER_CONNECTION) {
      this.start(req, res)
      return true
    }
    if (this.waiting.length >= MAX_WAITING_PER_CONNECTION) return false
    this.waiting.push([req, res])
    return true
  }

  /**
   * The connection is gone: what waits is never handled, and the answers being worked on
   * that never got the socket are closed as Node closes the one that had it. Node leaves
   * them open for good, and whatever they were sending with them (a static file's
   * descriptor: found by the eighth review, 800 kept by 200 closed keyless connections
   * each with 5 pipelined GETs of a big file), and their requests' turns and waits.
   */
  close(): void {
    this.closed = true
    this.waiting.length = 0
    this.idleCallbacks = []
    for (const res of this.answers) {
      if (res.socket) continue
      if (!res.destroyed) res.destroy()
      res.emit('close')
    }
  }

  private start(req: IncomingMessage, res: ServerResponse): void {
    this.answers.add(res)
    res.once('close', () => {
      this.answers.delete(res)
      const next = this.waiting.shift()
      if (next && !this.closed) this.start(...next)
      if (!this.idle) return
      const callbacks = this.idleCallbacks
      this.idleCallbacks = []
      for (const callback of callbacks) callback()
    })
    this.handle(req, res)
  }
}
