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

/**
 * The close code of a connection whose reader fell behind: one of the application's own
 * (a client may close only with 1000 or 3000-4999), beside the server's 4001 for a reader
 * that does not read.
 */
const FELL_BEHIND = 4009

/**
 * One WebSocket connection as a queue of text messages. Messages the reader has not taken
 * are held up to `maxQueued` characters: past it (a reader far behind, or a server that
 * never stops) the connection is closed, and the stream resumes on a new one from the last
 * event taken, so nothing is lost and this process's memory stays bounded.
 */
class Connection {
  private readonly queue: string[] = []
  private queued = 0
  private wake: (() => void) | undefined
  closed = false
  closeCode: number | undefined
  closeReason = ''
  private readonly socket: WebSocketLike

  constructor(Ctor: WebSocketCtor, url: string, maxQueued: number) {
    this.socket = new Ctor(url)
    const end = (code: number | undefined, reason: string) => {
      if (this.closed) return
      this.closed = true
      this.closeCode = code
      this.closeReason = reason
      this.wake?.()
    }
    this.socket.addEventListener('message', (e) => {
      if (this.closed) return
      const text = typeof e.data === 'string' ? e.data : String(e.data)
      if (this.queued + text.length > maxQueued) {
        end(FELL_BEHIND, 'the reader fell behind; resumed on a new connection')
        this.close(FELL_BEHIND)
        return
      }
      this.queued += text.length
      this.queue.push(text)
      this.wake?.()
    })
    this.socket.addEventListener('close', (e) => end(e.code, e.reason ?? ''))
    this.socket.addEventListener('error', (e) => end(undefined, e.message ?? 'connection error'))
  }

  async next(signal?: AbortSignal): Promise<string | undefined> {
    for (;;) {
      const text = this.queue.shift()
      if (text !== undefined) {
        this.queued -= text.length
        return text
      }
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

  close(code = 1000): void {
    try {
      this.socket.close(code)
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
    const conn = new Connection(Ctor, url, http.options.maxAnswerBytes)
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
    const soon = conn.closeCode === 1012 || conn.closeCode === 4001 || conn.closeCode === FELL_BEHIND
    await sleep(soon ? 50 : backoffMs(failures - 1), options.signal)
  }
}
