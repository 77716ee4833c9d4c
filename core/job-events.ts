import { Type, type Static } from 'typebox'
import type { Redis } from 'ioredis'
import { JobSchema } from './job.js'
import { JobStatusSchema } from './job-status.js'
import type { RedisKeys } from './redis-keys.js'
import { defineJobScripts, runReadScript } from './job-lifecycle/scripts.js'
import { STEP_KINDS } from './test-cases.js'

/**
 * A job's events, as stored in its Redis Stream and as sent to clients. `seq` numbers
 * every event of a job from 1 without gaps; `?from=<seq>` resumes after one.
 */
export const LogEventSchema = Type.Object({
  type: Type.Literal('log'),
  stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
  data: Type.String(),
  seq: Type.Integer(),
  ts: Type.String({ format: 'date-time' }),
})
/** A step of a compiled job or of a job with test cases starting: which one is running now. */
export const StepEventSchema = Type.Object({
  type: Type.Literal('step'),
  step: Type.Enum(STEP_KINDS, {
    type: 'string',
    title: 'StepKind',
    description: 'compile; run: the one run of a job without tests; test: a test case',
  }),
  index: Type.Integer({ minimum: 0, description: '0 for the compile; runs and test cases from 1' }),
  seq: Type.Integer(),
  ts: Type.String({ format: 'date-time' }),
})
export const StatusEventSchema = Type.Object({
  type: Type.Literal('status'),
  status: JobStatusSchema,
  seq: Type.Integer(),
  ts: Type.String({ format: 'date-time' }),
})
export const EndEventSchema = Type.Object({
  type: Type.Literal('end'),
  job: JobSchema,
  seq: Type.Integer(),
  ts: Type.String({ format: 'date-time' }),
})
export const JobEventSchema = Type.Union([LogEventSchema, StepEventSchema, StatusEventSchema, EndEventSchema])

export type LogEvent = Static<typeof LogEventSchema>
export type StatusEvent = Static<typeof StatusEventSchema>
export type StepEvent = Static<typeof StepEventSchema>
export type EndEvent = Static<typeof EndEventSchema>
export type JobEvent = Static<typeof JobEventSchema>
/** What the stream holds; the `end` event gets its job when it is sent. */
export type StoredEvent = LogEvent | StepEvent | StatusEvent | Omit<EndEvent, 'job'>

function toEvent(fields: string[]): StoredEvent | undefined {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
  const seq = Number(f.seq)
  const ts = new Date(Number(f.ts)).toISOString()
  if (f.type === 'log')
    return { type: 'log', stream: f.stream === 'stderr' ? 'stderr' : 'stdout', data: f.data ?? '', seq, ts }
  if (f.type === 'step' && (STEP_KINDS as readonly string[]).includes(f.step ?? ''))
    return { type: 'step', step: f.step as StepEvent['step'], index: Number(f.index), seq, ts }
  if (f.type === 'status') return { type: 'status', status: f.status as StatusEvent['status'], seq, ts }
  if (f.type === 'end') return { type: 'end', seq, ts }
  return undefined
}

/** Data bytes a bounded read gathers at most, beyond the one event that passes them. */
export const EVENT_READ_BYTES = 128 * 1024
/** Events a bounded read returns at most. */
export const EVENT_READ_ENTRIES = 256
/** The most data bytes one event holds: 64 K characters of up to 3 bytes each. */
export const EVENT_MAX_DATA_BYTES = 64 * 1024 * 3

export class JobEventReader {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    defineJobScripts(redis)
  }

  /** Up to `count` events with seq greater than `afterSeq`, in order. */
  async after(jobId: string, afterSeq: number, count: number): Promise<StoredEvent[]> {
    const start = afterSeq > 0 ? `(${afterSeq}-0` : '-'
    const entries = await this.redis.xrange(this.keys.jobEvents(jobId), start, '+', 'COUNT', count)
    return entries.map(([, fields]) => toEvent(fields)).filter((e): e is StoredEvent => e !== undefined)
  }

  /**
   * The events with seq greater than `afterSeq`, in order, as many as one round trip
   * bounds: at most EVENT_READ_ENTRIES, stopping after the one whose data passes
   * EVENT_READ_BYTES. Empty once there are none.
   */
  async within(jobId: string, afterSeq: number): Promise<StoredEvent[]> {
    const start = afterSeq > 0 ? `(${afterSeq}-0` : '-'
    const entries = (await runReadScript(
      this.redis,
      'readEvents',
      [this.keys.jobEvents(jobId)],
      [start, EVENT_READ_BYTES, EVENT_READ_ENTRIES],
    )) as [string, string[]][]
    return entries.map(([, fields]) => toEvent(fields)).filter((e): e is StoredEvent => e !== undefined)
  }
}
