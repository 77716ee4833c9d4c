import type { KubeConfig } from '@kubernetes/client-node'
import { CappedOutput, keepAndPassOn } from '../output-capture.js'
import { LogFollower, StreamSelectionRefused, type LogStream } from './log-follower.js'

export interface ContainerOutputOptions {
  kc: KubeConfig
  target: { namespace: string; pod: string; container: string }
  /** Cap of stdout and of stderr, each, as under the local executor. */
  capBytes: number
  /** Follow stdout and stderr apart (the cluster allows stream selection); else one merged log into stdout. */
  split: boolean
  onOutput: ((stream: 'stdout' | 'stderr', text: string) => void) | undefined
  /** A broken log stream (it is resumed) or a refused stream selection (it falls back). */
  onProblem: (err: unknown) => void
}

/**
 * A sandbox container's output, read through the API server's log endpoint. Where the
 * cluster allows choosing a stream (the PodLogsQuerySplitStreams feature gate),
 * stdout and stderr are followed apart, as the local executor reads its two pipes;
 * otherwise the one merged log is stdout. A node whose kubelet refuses the choice
 * while the API server allows it gets the merged log for that job.
 */
export class ContainerOutput {
  readonly stdout: CappedOutput
  readonly stderr: CappedOutput
  private followers: LogFollower[] = []
  private delivered = false
  private stopped = false
  private resolveDone!: () => void
  /** Resolves when every followed stream has ended (the container exited) or was given up. */
  readonly done = new Promise<void>((resolve) => {
    this.resolveDone = resolve
  })

  constructor(private readonly options: ContainerOutputOptions) {
    this.stdout = new CappedOutput(options.capBytes)
    this.stderr = new CappedOutput(options.capBytes)
  }

  get truncated(): boolean {
    return this.stdout.truncated || this.stderr.truncated
  }

  start(): void {
    if (this.options.split) this.follow([['stdout', 'Stdout'], ['stderr', 'Stderr']])
    else this.follow([['stdout', undefined]])
  }

  stop(): void {
    this.stopped = true
    for (const f of this.followers) f.stop()
    this.resolveDone()
  }

  private follow(streams: ['stdout' | 'stderr', LogStream | undefined][]): void {
    const refused = { seen: false }
    this.followers = streams.map(([name, stream]) => {
      const onOutput = this.options.onOutput
      const sink = keepAndPassOn(name === 'stdout' ? this.stdout : this.stderr, onOutput && ((text) => onOutput(name, text)))
      return new LogFollower(
        this.options.kc,
        { ...this.options.target, ...(stream ? { stream } : {}) },
        (chunk) => {
          this.delivered = true
          sink(chunk)
        },
        (err) => {
          this.options.onProblem(err)
          if (!(err instanceof StreamSelectionRefused)) return
          refused.seen = true
          // Both streams meet the same refusal; no need to wait for the other's.
          if (!this.delivered) for (const f of this.followers) f.stop()
        },
      )
    })
    const current = this.followers
    void Promise.all(current.map((f) => f.done)).then(() => {
      if (this.stopped || current !== this.followers) return
      // The refusal comes before any output, so the merged log loses and repeats nothing.
      // Past that point the streams cannot be merged byte-exactly; what was read stays.
      // The merged log chooses no stream, so it cannot be refused in turn.
      if (refused.seen && !this.delivered) {
        return this.follow([['stdout', undefined]])
      }
      this.resolveDone()
    })
    for (const f of current) f.start()
  }
}
