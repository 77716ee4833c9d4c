import { Watch, type KubeConfig } from '@kubernetes/client-node'

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

interface KubeObject {
  metadata?: { resourceVersion?: string }
}

export interface ResumableWatchOptions<T> {
  /** Collection path, e.g. /apis/batch/v1/namespaces/ns/jobs */
  path: string
  query: Record<string, string>
  /** The server ends each watch request after this; it is then resumed. */
  timeoutSeconds: number
  onEvent(type: WatchEventType, object: T): void
  /** Called each time a watch request ended and another one took over. */
  onResume?(): void
  onError?(err: unknown): void
}

const RETRY_MS = 500

/**
 * A watch that survives its requests ending (server timeouts, broken connections,
 * API server restarts): it resumes from the last resourceVersion it saw, so no event
 * is lost, and starts over with a fresh list when that version has expired (410).
 * A watch without a resourceVersion begins with an ADDED event per existing object.
 */
export class ResumableWatch<T extends KubeObject> {
  private resourceVersion: string | undefined
  private abort: AbortController | undefined
  private stopped = false
  private retry: NodeJS.Timeout | undefined

  constructor(
    private readonly kc: KubeConfig,
    private readonly options: ResumableWatchOptions<T>,
  ) {}

  start(): void {
    void this.open()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.retry)
    this.abort?.abort()
  }

  private async open(): Promise<void> {
    if (this.stopped) return
    const query: Record<string, string | number | boolean> = {
      ...this.options.query,
      allowWatchBookmarks: true,
      timeoutSeconds: this.options.timeoutSeconds,
    }
    if (this.resourceVersion) query.resourceVersion = this.resourceVersion
    let ended = false
    const again = (err: unknown) => {
      if (ended || this.stopped) return
      ended = true
      if (err) this.options.onError?.(err)
      this.options.onResume?.()
      this.retry = setTimeout(() => void this.open(), err ? RETRY_MS : 0)
    }
    try {
      this.abort = await new Watch(this.kc).watch(
        this.options.path,
        query,
        (type: string, object: T & { code?: number }) => {
          if (type === 'ERROR') {
            // 410 Gone: our resourceVersion is too old; list again from scratch.
            if (object.code === 410) this.resourceVersion = undefined
            return
          }
          const rv = object.metadata?.resourceVersion
          if (rv) this.resourceVersion = rv
          if (type === 'BOOKMARK') return
          this.options.onEvent(type as WatchEventType, object)
        },
        again,
      )
      if (this.stopped) this.abort.abort()
    } catch (err) {
      again(err)
    }
  }
}
