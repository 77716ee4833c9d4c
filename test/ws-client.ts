import WebSocket from 'ws'
import type { JobEvent } from '../core/job-events.js'

export interface Received {
  events: (JobEvent & { at: number })[]
  close: { code: number; reason: string }
}

/** Opens a job's stream like any client would and collects everything until it closes. */
export function openStream(
  baseUrl: string,
  path: string,
  headers: Record<string, string> = {},
  onOpen?: (ws: WebSocket) => void,
): Promise<Received> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${path}`, { headers })
    const events: Received['events'] = []
    ws.on('open', () => onOpen?.(ws))
    ws.on('message', (data) => events.push({ ...(JSON.parse(data.toString()) as JobEvent), at: Date.now() }))
    ws.on('close', (code, reason) => resolve({ events, close: { code, reason: reason.toString() } }))
    ws.on('unexpected-response', (req, res) => {
      // A refused upgrade leaves the socket open unless we drop it.
      req.destroy()
      res.resume()
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode }))
    })
    ws.on('error', (err) => reject(err))
  })
}

/** The event sequence without arrival times, for comparing what two clients got. */
export function strip(r: Received): JobEvent[] {
  return r.events.map(({ at: _at, ...e }) => e as JobEvent)
}
