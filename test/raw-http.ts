import { connect, type Socket } from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** The server closed the connection after answering. */
  closed: boolean
}

/**
 * One HTTP/1.1 request written byte for byte, so tests can send what no client library
 * would: a percent-encoded or absolute-form request target, a body that never comes.
 */
export function rawRequest(port: number, head: string, body = '', timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${head}\r\n\r\n${body}`))
    let data = ''
    let closed = false
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer within ${timeoutMs} ms to ${head.split('\r\n')[0]}`))
    }, timeoutMs)
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      data += d
      const parsed = parse(data)
      // Answered with a complete body: done, whether or not the server closes.
      if (parsed && Buffer.byteLength(parsed.body, 'latin1') >= Number(parsed.headers['content-length'] ?? Infinity)) {
        setTimeout(() => finish(), 50)
      }
    })
    socket.on('close', () => {
      closed = true
      finish()
    })
    socket.on('error', () => undefined)
    let done = false
    function finish() {
      if (done) return
      const parsed = parse(data)
      if (!parsed && !closed) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      if (!parsed) reject(new Error(`connection closed without an answer to ${head.split('\r\n')[0]}`))
      else resolve({ ...parsed, closed })
    }
  })
}

function parse(data: string): Omit<RawResponse, 'closed'> | undefined {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const [statusLine, ...lines] = data.slice(0, end).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  return { status, headers, body: data.slice(end + 4) }
}

/**
 * Opens a connection and sends `head` (and nothing more); the caller trickles the rest.
 * `partial`: the head is sent without the blank line that ends it (headers still coming).
 * `from`: the local address to connect from (any of 127.0.0.0/8 is a different client).
 */
export function openRaw(port: number, head: string, { partial = false, from = '127.0.0.1' } = {}): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from }, () => {
      socket.write(partial ? head : `${head}\r\n\r\n`)
      resolve(socket)
    })
    socket.on('error', () => undefined)
  })
}

/** Every way to spell `path` with some of its characters percent-encoded (a sample). */
export function percentSpellings(path: string): string[] {
  const enc = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`
  const out = new Set<string>()
  const chars = [...path]
  chars.forEach((c, i) => {
    if (c === '/') return
    out.add(chars.map((d, j) => (j === i ? enc(d) : d)).join(''))
    out.add(chars.map((d, j) => (j === i ? enc(d).toLowerCase() : d)).join(''))
  })
  out.add(chars.map((c) => (c === '/' ? c : enc(c))).join(''))
  return [...out]
}

/** Whether a socket is closed, by either side. */
export function isClosed(socket: Socket): boolean {
  return socket.destroyed || socket.readyState === 'closed'
}

/** An array for the sockets a test holds open, each destroyed when the test ends. */
export function heldSockets(t: { teardown(fn: () => unknown): void }): Socket[] {
  const sockets: Socket[] = []
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
  })
  return sockets
}

/**
 * What a socket is sent until it closes, or until `timeoutMs` (then `closed` is false and
 * the socket is destroyed).
 */
export function untilClosed(socket: Socket, timeoutMs: number): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    let data = ''
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1')
    })
    socket.on('error', () => undefined)
    const done = (closed: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ data, closed })
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    socket.on('close', () => done(true))
  })
}
