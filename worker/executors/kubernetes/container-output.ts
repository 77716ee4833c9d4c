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

type StreamName = 'stdout' | 'stderr'

/**
 * A sandbox container's output, read through an attach to the container (a cold pod's
 * launcher waits for the worker's attach before it runs anything, so the attach sees
 * every byte) or through the API server's log endpoint (a warm pod, an adopted job, or
 * an attach that ended before the launcher's report, which the log then continues
 * where the attach stopped). Where the cluster allows choosing a log stream (the
 * PodLogsQuerySplitStreams feature gate), stdout and stderr are followed apart, as
 * the local executor reads its two pipes; otherwise the one merged log is stdout. A
 * node whose kubelet refuses the choice while the API server allows it gets the
 * merged log for that job.
 */
export class ContainerOutput {
  readonly stdout: CappedOutput
  readonly stderr: CappedOutput
  private followers: LogFollower[] = []
  private readonly filters: Record<StreamName, LauncherReportFilter>
  /** Bytes of each stream as the container wrote them (the launcher's lines included), read by an attach. */
  private readonly attached = { stdout: 0, stderr: 0 }
  private delivered = false
  private following = false
  /** The launcher ends stderr with its end line and stdout with its exit line; a merged log has both. */
  private readonly seen: { end: boolean; exit: Extract<ReportLine, { kind: 'exit' }> | undefined } = {
    end: false,
    exit: undefined,
  }
  /** Set once the launcher's report is complete (ContainerOutputOptions.onReport). */
  report: ExitReport | undefined
  private stopped = false
  private resolveDone!: () => void
  /**
   * Resolves when every followed stream has ended (the container exited), the report is complete, or following was
   * given up.
   */
  readonly done = new Promise<void>((resolve) => {
    this.resolveDone = resolve
  })

  constructor(private readonly options: ContainerOutputOptions) {
    this.stdout = new CappedOutput(options.capBytes)
    this.stderr = new CappedOutput(options.capBytes)
    const filter = (name: StreamName) => {
      const onOutput = options.onOutput
      const sink = keepAndPassOn(
        name === 'stdout' ? this.stdout : this.stderr,
        onOutput && ((text) => onOutput(name, text)),
      )
      return new LauncherReportFilter(sink, (line) => this.onLine(line))
    }
    this.filters = { stdout: filter('stdout'), stderr: filter('stderr') }
  }

  get truncated(): boolean {
    return this.stdout.truncated || this.stderr.truncated
  }

  /** Follows the log endpoint from the start, past whatever an attach already read. */
  start(): void {
    if (this.following || this.stopped || this.report) return
    this.following = true
    if (this.options.split)
      this.follow([
        ['stdout', 'Stdout'],
        ['stderr', 'Stderr'],
      ])
    else this.follow([['stdout', undefined]])
  }

  /** A chunk of one stream, read by an attach to the container. */
  feed(name: StreamName, chunk: Buffer): void {
    if (this.stopped || this.following) return
    this.attached[name] += chunk.length
    this.delivered = true
    this.filters[name].write(chunk)
  }

  /**
   * The attach ended. With the launcher's report read, everything was; otherwise (an
   * OOM kill, a broken attach) the log is read on from where the attach stopped.
   */
  attachEnded(): void {
    // After what the attach's streams still hold for this tick has been fed.
    setTimeout(() => this.start(), 0)
  }

  stop(): void {
    this.stopped = true
    for (const f of this.followers) f.stop()
    this.filters.stdout.flush()
    this.filters.stderr.flush()
    this.resolveDone()
  }

  private onLine(line: ReportLine): void {
    if (line.kind === 'end') this.seen.end = true
    else this.seen.exit = line
    if (!this.seen.end || !this.seen.exit || this.report || this.stopped) return
    this.report = { exitCode: this.seen.exit.exitCode, at: this.seen.exit.at }
    this.options.onReport?.(this.report)
    // Everything the program wrote came before the launcher's lines: the output is whole.
    this.resolveDone()
  }

  private follow(streams: [StreamName, LogStream | undefined][]): void {
    const refused = { seen: false }
    this.followers = streams.map(([name, stream]) => {
      const filter = this.filters[name]
      // A merged log holds both streams: past both of what an attach read.
      const skip = stream ? this.attached[name] : this.attached.stdout + this.attached.stderr
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
        skip,
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
