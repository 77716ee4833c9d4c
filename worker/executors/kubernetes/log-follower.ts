import { request, type RequestOptions } from 'node:https'
import type { KubeConfig } from '@kubernetes/client-node'

const RETRY_MS = 500
const MAX_ATTEMPTS = 20

/** One of a container's two output streams, as the log API names them. */
export type LogStream = 'Stdout' | 'Stderr'

/**
 * The cluster refused to select one stream: the API server (422) or the pod's kubelet
 * (400) runs without the PodLogsQuerySplitStreams feature gate. Retrying cannot help.
 */
export class StreamSelectionRefused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StreamSelectionRefused'
  }
}

/** Whether a refused log request refused its `stream` parameter (rather than failing for another reason). */
function refusesStreamSelection(statusCode: number, body: string): boolean {
  return (statusCode === 400 || statusCode === 422) && /stream/i.test(body)
}

/**
 * Follows a container's log through the API server. A stream that breaks is opened
 * again; the log is then read from its start and the bytes already delivered are
 * skipped, so output is neither lost nor repeated. `done` resolves when the log has
 * ended (the container exited) or following was given up. With `stream` it follows
 * only that stream, which needs the cluster's PodLogsQuerySplitStreams feature gate;
 * a refusal of that ends following at once with `StreamSelectionRefused`.
 */
export class LogFollower {
  private delivered = 0
  private abort: AbortController | undefined
  private stopped = false
  private attempts = 0
  private resolveDone!: () => void
  readonly done = new Promise<void>((resolve) => {
    this.resolveDone = resolve
  })

  constructor(
    private readonly kc: KubeConfig,
    private readonly target: { namespace: string; pod: string; container: string; stream?: LogStream },
    private readonly onChunk: (chunk: Buffer) => void,
    private readonly onError: (err: unknown) => void,
    /** Bytes of the log already read another way (an attach): skipped as if delivered. */
    alreadyDelivered = 0,
  ) {
    this.delivered = alreadyDelivered
  }

  start(): void {
    void this.open()
  }

  stop(): void {
    this.stopped = true
    this.abort?.abort()
    this.finish()
  }

  private finish(): void {
    this.resolveDone()
  }

  private async open(): Promise<void> {
    if (this.stopped) return
    this.attempts++
    let seen = 0
    let ended = false
    const done = (err: unknown) => {
      if (ended || this.stopped) return
      ended = true
      if (!err) return this.finish()
      this.onError(err)
      if (err instanceof StreamSelectionRefused || this.attempts >= MAX_ATTEMPTS) return this.finish()
      setTimeout(() => void this.open(), RETRY_MS)
    }
    try {
      const server = this.kc.getCurrentCluster()?.server
      if (!server) throw new Error('the kubeconfig has no current cluster')
      const { namespace, pod, container, stream } = this.target
      const url = new URL(
        `${server}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`,
      )
      url.search = new URLSearchParams({ container, follow: 'true', ...(stream ? { stream } : {}) }).toString()
      const options: RequestOptions = { method: 'GET', headers: {} }
      await this.kc.applyToHTTPSOptions(options)
      this.abort = new AbortController()
      const req = request(url, { ...options, signal: this.abort.signal }, (res) => {
        if (res.statusCode !== 200) {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (d: string) => (body += d))
          res.on('end', () => {
            const message = `container log request answered ${res.statusCode}: ${body.slice(0, 300)}`
            done(
              stream && refusesStreamSelection(res.statusCode ?? 0, body)
                ? new StreamSelectionRefused(message)
                : new Error(message),
            )
          })
          res.on('error', done)
          return
        }
        res.on('data', (chunk: Buffer) => {
          const skip = Math.max(0, Math.min(chunk.length, this.delivered - seen))
          seen += chunk.length
          if (skip < chunk.length) {
            this.delivered += chunk.length - skip
            this.onChunk(chunk.subarray(skip))
          }
        })
        res.on('end', () => done(res.complete ? null : new Error('the container log stream broke')))
        res.on('error', done)
      })
      req.on('error', done)
      req.end()
    } catch (err) {
      done(err)
    }
  }
}
