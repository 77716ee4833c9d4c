import type { JobEvent } from './api-types.js'
import { AbortedError, ConnectionError } from './errors.js'
import { backoffMs, sleep, type Http } from './http.js'
import { jobPath } from './paths.js'

/** The WebSocket constructor the SDK uses: the platform's, or the `ws` package on Node < 22. */
type WebSocketLike = {
  addEventListener(
    type: string,
    listener: (event: { data?: unknown; code?: number; reason?: string; message?: string }) => void,
  ): void
  close(code?: number): void
}
type WebSocketCtor = new (url: string) => WebSocketLike

let cachedCtor: WebSocketCtor | undefined
async function webSocketCtor(): Promise<WebSocketCtor> {
  if (cachedCtor) return cachedCtor
  const platform = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket
  cachedCtor = platform ?? ((await import('ws')).default as unknown as WebSocketCtor)
  return cachedCtor
}

export interface StreamOptions {
  /** Resume after this event sequence number (events with seq <= from are skipped). @default 0 */
  from?: number
  signal?: AbortSignal
  /** Consecutive failed connections before giving up. @default 8 */
  maxReconnects?: number
}

/** One WebSocket connection as a queue of text messages. */
class Connection {
  private readonly queue: string[] = []
  private wake: (() => void) | undefined
  closed = false
  closeCode: number | undefined
  closeReason = ''
  private readonly socket: WebSocketLike

  constructor(Ctor: WebSocketCtor, url: string) {
    this.socket = new Ctor(url)
    this.socket.addEventListener('message', (e) => {
      this.queue.push(typeof e.data === 'string' ? e.data : String(e.data))
      this.wake?.()
    })
    const end = (code: number | undefined, reason: string) => {
      if (this.closed) return
      this.closed = true
      this.closeCode = code
      this.closeReason = reason
      this.wake?.()
    }
    this.socket.addEventListener('close', (e) => end(e.code, e.reason ?? ''))
    this.socket.addEventListener('error', (e) => end(undefined, e.message ?? 'connection error'))
  }

  async next(signal?: AbortSignal): Promise<string | undefined> {
    for (;;) {
      if (this.queue.length > 0) return this.queue.shift()
      if (this.closed) return undefined
      if (signal?.aborted) throw new AbortedError('aborted', 'AIRLOCK_SDK_ABORTED')
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve()
        signal?.addEventListener('abort', onAbort, { once: true })
        this.wake = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
      })
      this.wake = undefined
    }
  }

  close(): void {
    try {
      this.socket.close(1000)
    } catch {
      // already closed
    }
  }
}

/**
 * A job's events as an async iterator, ending after the `end` event. A dropped
 * connection (network, server restart, too slow a reader) is reopened from the last
 * event received, so no event is lost or repeated. Each connection authenticates with
 * a single-use stream token, which works with any WebSocket implementation.
 */
export async function* streamJobEvents(
  http: Http,
  jobId: string,
  options: StreamOptions = {},
): AsyncGenerator<JobEvent, void, undefined> {
  const Ctor = await webSocketCtor()
  let from = options.from ?? 0
  let failures = 0
  const path = jobPath(jobId)
  for (;;) {
    const { token } = (
      await http.request<{ token: string }>({
        method: 'POST',
        path: `${path}/stream-tokens`,
        idempotent: true,
        signal: options.signal,
      })
    ).body
    const url = http.url(`${path}/stream`, { from, token }).replace(/^http/, 'ws')
    const conn = new Connection(Ctor, url)
    try {
      for (;;) {
        const text = await conn.next(options.signal)
        if (text === undefined) break
        const event = JSON.parse(text) as JobEvent
        if (event.seq <= from) continue
        from = event.seq
        failures = 0
        yield event
        if (event.type === 'end') return
      }
    } finally {
      conn.close()
    }
    failures++
    if (failures > (options.maxReconnects ?? 8)) {
      throw new ConnectionError(
        `the stream of job ${jobId} keeps breaking (last close ${conn.closeCode ?? '-'} ${conn.closeReason})`,
        'AIRLOCK_SDK_CONNECTION',
      )
    }
    http.options.logger.debug(
      `airlock: stream of ${jobId} closed (${conn.closeCode ?? conn.closeReason}); resuming after seq ${from}`,
    )
    await sleep(conn.closeCode === 1012 || conn.closeCode === 4001 ? 50 : backoffMs(failures - 1), options.signal)
  }
}
