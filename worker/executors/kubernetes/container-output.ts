import type { KubeConfig } from '@kubernetes/client-node'
import { CappedOutput, keepAndPassOn } from '../output-capture.js'
import { LauncherReportFilter, type ReportLine } from './launcher-report.js'
import { LogFollower, StreamSelectionRefused, type LogStream } from './log-follower.js'

/** The program's end as the launcher reported it on the log, once every stream was passed on. */
export interface ExitReport {
  exitCode: number
  /** When the program ended (epoch ms, the sandbox's clock). */
  at: number
}

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
  /** The launcher reported the program's end, and all of its output has been read. */
  onReport?: (report: ExitReport) => void
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
  private filters: LauncherReportFilter[] = []
  private delivered = false
  /** Set once the launcher's report is complete (ContainerOutputOptions.onReport). */
  report: ExitReport | undefined
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
    for (const f of this.filters) f.flush()
    this.resolveDone()
  }

  private follow(streams: ['stdout' | 'stderr', LogStream | undefined][]): void {
    const refused = { seen: false }
    // The launcher ends stderr with its end line and stdout with its exit line; a merged log has both.
    const seen: { end: boolean; exit: ReportLine | undefined } = { end: false, exit: undefined }
    const onLine = (line: ReportLine) => {
      if (line.kind === 'end') seen.end = true
      else seen.exit = line
      if (!seen.end || seen.exit?.kind !== 'exit' || this.report || this.stopped) return
      this.report = { exitCode: seen.exit.exitCode, at: seen.exit.at }
      this.options.onReport?.(this.report)
      // Everything the program wrote came before the launcher's lines: the output is whole.
      this.resolveDone()
    }
    this.filters = []
    this.followers = streams.map(([name, stream]) => {
      const onOutput = this.options.onOutput
      const sink = keepAndPassOn(name === 'stdout' ? this.stdout : this.stderr, onOutput && ((text) => onOutput(name, text)))
      const filter = new LauncherReportFilter(sink, onLine)
      this.filters.push(filter)
      const follower = new LogFollower(
        this.options.kc,
        { ...this.options.target, ...(stream ? { stream } : {}) },
        (chunk) => {
          this.delivered = true
          filter.write(chunk)
        },
        (err) => {
          this.options.onProblem(err)
          if (!(err instanceof StreamSelectionRefused)) return
          refused.seen = true
          // Both streams meet the same refusal; no need to wait for the other's.
          if (!this.delivered) for (const f of this.followers) f.stop()
        },
      )
      // At the stream's end what the filter held back is the program's (before the wait below).
      void follower.done.then(() => filter.flush())
      return follower
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
