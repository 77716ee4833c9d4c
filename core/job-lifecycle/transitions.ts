import { JOB_STATUSES, type JobStatus } from '../job-status.js'

/**
 * Every move a job can make, in one table: the statuses it may start from and those it
 * may end in. Each move is one Lua script (lua/<script>.lua) that is given its `from`
 * list and checks the job's status against it before it writes anything, so a job is
 * claimed once and ends once. `isFinalStatus`, the README's table and the tests read
 * the same table.
 */
export interface Transition {
  /** The script in lua/ that makes the move. */
  readonly script: string
  readonly from: readonly JobStatus[]
  readonly to: readonly JobStatus[]
  /** What the move is for, as the README's table says it. */
  readonly doc: string
}

export const TRANSITIONS = {
  create: {
    script: 'create',
    from: [],
    to: ['queued'],
    doc: 'the API accepts a job (unless a tenant quota refuses it)',
  },
  claim: {
    script: 'claim',
    from: ['queued'],
    to: ['running', 'cancelled'],
    doc: 'a worker takes the job; cancelled if a cancel came first; stays queued while the tenant is at maxRunning',
  },
  requeue: {
    script: 'requeue',
    from: ['running'],
    to: ['queued'],
    doc: 'a worker stopping past its grace period hands the job back',
  },
  takeOver: {
    script: 'take-over',
    from: ['running'],
    to: ['running'],
    doc: 'a worker follows a sandbox that outlived the worker that launched it',
  },
  finish: {
    script: 'finish',
    from: ['queued', 'running'],
    to: ['succeeded', 'failed', 'timeout', 'oom', 'cancelled', 'error'],
    doc: 'the job ends with its result, written once',
  },
  cancel: {
    script: 'cancel',
    from: ['queued', 'running'],
    to: ['cancelled'],
    doc: 'the tenant cancels: a queued job ends at once, a running one is killed and ends through finish',
  },
  lost: {
    script: 'lost',
    from: ['running'],
    to: ['error'],
    doc: 'the worker running the job stopped; it is not run again',
  },
  withdraw: {
    script: 'withdraw',
    from: ['queued'],
    to: [],
    doc: 'a job whose queue entry was not written (or whose answer was lost) is taken back, unless a worker has it',
  },
  launch: {
    script: 'launch',
    from: ['running'],
    to: [],
    doc: 'the worker holding the job starts its program, only while it still holds it; counted in `launches`',
  },
  log: {
    script: 'append-log',
    from: ['running'],
    to: [],
    doc: "output is added to the job's events, only while it runs",
  },
  step: {
    script: 'append-step',
    from: ['running'],
    to: [],
    doc: 'a step (compile, a test case) starts, only while the job runs',
  },
} as const satisfies Record<string, Transition>

export type TransitionName = keyof typeof TRANSITIONS

/** The statuses some move starts from: a job in one of them has not ended. */
const LIVE: ReadonlySet<JobStatus> = new Set(Object.values(TRANSITIONS).flatMap((t): readonly JobStatus[] => t.from))

export type FinalStatus = Exclude<JobStatus, 'queued' | 'running'>

/** The statuses no move starts from: once there, a job stays. */
export const FINAL_STATUSES: readonly FinalStatus[] = JOB_STATUSES.filter((s): s is FinalStatus => !LIVE.has(s))

export function isFinalStatus(status: JobStatus): status is FinalStatus {
  return !LIVE.has(status)
}

/** The README's table of moves, from TRANSITIONS (checked by a test). */
export function transitionsTable(): string {
  const rows = Object.entries(TRANSITIONS).map(([name, t]: [string, Transition]) => {
    const list = (s: readonly string[]) => (s.length ? s.map((x) => `\`${x}\``).join(', ') : '(none)')
    return `| ${name} | \`lua/${t.script}.lua\` | ${list(t.from)} | ${list(t.to)} | ${t.doc} |`
  })
  return ['| move | script | from | to | what for |', '|---|---|---|---|---|', ...rows].join('\n')
}
