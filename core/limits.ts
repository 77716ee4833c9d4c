/**
 * The limits of one job, each defined once here. The request schema (`limits`), the
 * `Limits` type, the AIRLOCK_DEFAULT_* and AIRLOCK_MAX_* settings (and so the README's
 * settings table), the tenant quotas max* and the checks against them are all made from
 * `LIMITS`. A new limit is one entry below, then what enforces it (the executors) and the
 * hand-written views of it (the console's form, the Python SDK's types).
 *
 * Imports nothing of ours: config.ts, job-spec.ts and tenant-store.ts all build on it.
 */
import { Type, type TInteger, type TNumber, type TOptional } from 'typebox'

/**
 * The largest count a quota may hold: a JSON number past it is no longer exact (2^53 - 1),
 * so `1.3e32` would be stored as a float and come back as another number.
 */
export const QUOTA_MAX = Number.MAX_SAFE_INTEGER
/** The largest CPUs quota: more than any machine a sandbox runs on. */
export const QUOTA_MAX_CPUS = 1024
/**
 * The least CPU a job may have. gVisor's own start, and its handling of the kill at the
 * time limit, run on the job's CPU share: at 0.001 cores a 100 ms job held its worker's
 * slot for 81 s (the start 23 s, the kill 58 s); at 0.1 both take a fraction of a second.
 */
export const MIN_CPUS = 0.1

interface LimitDefinition {
  /** number: fractions allowed. */
  type: 'integer' | 'number'
  /** The request field's description, with its unit. */
  description: string
  /** Of the request field and of the tenant's quota alike. */
  bounds: { minimum: number; maximum: number } | { exclusiveMinimum: number; maximum: number }
  settings: {
    /** Of AIRLOCK_DEFAULT_<NAME>; AIRLOCK_MAX_<NAME>'s is made from the limit's name. */
    defaultDoc: string
    default: number
    max: number
    /** What an operator may set either setting to. */
    range: readonly [min: number, max: number]
  }
}

export const LIMITS = {
  timeoutMs: {
    type: 'integer',
    description: 'Wall-clock limit, milliseconds',
    bounds: { minimum: 100, maximum: QUOTA_MAX },
    settings: {
      defaultDoc: 'Default wall-clock limit of a job',
      default: 10_000,
      max: 300_000,
      range: [100, 86_400_000],
    },
  },
  memoryMb: {
    type: 'integer',
    description: 'Memory limit, MiB',
    bounds: { minimum: 16, maximum: QUOTA_MAX },
    settings: { defaultDoc: 'Default memory limit', default: 256, max: 2048, range: [16, 1 << 20] },
  },
  cpus: {
    type: 'number',
    description: `CPU limit, cores (fractions allowed, at least ${MIN_CPUS})`,
    bounds: { minimum: MIN_CPUS, maximum: QUOTA_MAX_CPUS },
    settings: { defaultDoc: 'Default CPU limit (cores)', default: 1, max: 2, range: [MIN_CPUS, 1024] },
  },
  pids: {
    type: 'integer',
    description: 'Processes and threads at once',
    bounds: { minimum: 1, maximum: QUOTA_MAX },
    settings: { defaultDoc: 'Default limit of processes and threads', default: 64, max: 512, range: [1, 1 << 16] },
  },
  outputBytes: {
    type: 'integer',
    description: 'Cap of stdout and of stderr, each, bytes (of each step: the compile, each test case)',
    bounds: { minimum: 1, maximum: QUOTA_MAX },
    settings: {
      defaultDoc: 'Default cap of stdout and of stderr, each',
      default: 1024 * 1024,
      max: 10 * 1024 * 1024,
      range: [1, 1 << 30],
    },
  },
} as const satisfies Record<string, LimitDefinition>

export type LimitName = keyof typeof LIMITS
/** In the order of the table: the order of the schema, the settings and error details. */
export const LIMIT_NAMES = Object.keys(LIMITS) as LimitName[]

/**
 * The compile step's wall-clock limit, for runtimes that compile. Not one of `LIMITS`:
 * it has a default setting of its own but no maximum or quota, timeoutMs's bound it, and
 * a job of a runtime that does not compile has none.
 */
export const COMPILE_TIMEOUT = {
  boundedBy: 'timeoutMs',
  description:
    "Wall-clock limit of the compile step of a compiled runtime, milliseconds; at most the server's (and tenant's) " +
    'maximum timeoutMs; ignored by runtimes that do not compile',
  defaultDoc: 'Default wall-clock limit of the compile step of a compiled runtime',
  default: 30_000,
} as const satisfies { boundedBy: LimitName; description: string; defaultDoc: string; default: number }

/** A job's limits once resolved: every default applied. */
export interface Limits extends Record<LimitName, number> {
  /** Set for runtimes with a compile step (and absent in records from before them). */
  compileTimeoutMs?: number
}
export type LimitField = keyof Limits

/** The server's default of a limit, in Config. */
export type LimitDefaultKey<K extends LimitField = LimitField> = `default${Capitalize<K>}`
/** The server's maximum of a limit, in Config, and the tenant's, in Quotas. */
export type LimitMaxKey<K extends LimitName = LimitName> = `max${Capitalize<K>}`

const capitalized = (s: string) => `${s[0]!.toUpperCase()}${s.slice(1)}`
/** Each name made once: every submission resolves its limits through them. */
const keyNames = (prefix: string) => {
  const made = new Map<string, string>()
  return (name: string) => made.get(name) ?? made.set(name, `${prefix}${capitalized(name)}`).get(name)!
}
const defaultKeyOf = keyNames('default')
const maxKeyOf = keyNames('max')
export const defaultKey = <K extends LimitField>(field: K) => defaultKeyOf(field) as LimitDefaultKey<K>
export const maxKey = <K extends LimitName>(name: K) => maxKeyOf(name) as LimitMaxKey<K>

/** Each field of a job's limits with the limit whose maximum (server's and tenant's) it may not pass. */
export const LIMIT_BOUNDS: readonly (readonly [LimitField, LimitName])[] = [
  ...LIMIT_NAMES.map((name) => [name, name] as const),
  ['compileTimeoutMs', COMPILE_TIMEOUT.boundedBy],
]

// Distributive: undistributed, LimitSchema<LimitName> is TNumber alone and the casts below do not type-check.
type LimitSchema<K extends LimitName> = K extends LimitName
  ? (typeof LIMITS)[K]['type'] extends 'integer'
    ? TInteger
    : TNumber
  : never

function limitSchema<K extends LimitName>(name: K, description: string): TOptional<LimitSchema<K>> {
  const { type, bounds } = LIMITS[name]
  const schema = type === 'integer' ? Type.Integer({ ...bounds, description }) : Type.Number({ ...bounds, description })
  return Type.Optional(schema) as TOptional<LimitSchema<K>>
}

/**
 * What a client may send as a job's `limits`. The schema checks shapes and absolute
 * bounds; `resolveJobSpec` then applies the server's configurable maximums and
 * defaults, which a static schema cannot know.
 */
export const LimitsSchema = Type.Object(
  {
    ...(Object.fromEntries(LIMIT_NAMES.map((name) => [name, limitSchema(name, LIMITS[name].description)])) as {
      [K in LimitName]: TOptional<LimitSchema<K>>
    }),
    compileTimeoutMs: limitSchema(COMPILE_TIMEOUT.boundedBy, COMPILE_TIMEOUT.description),
  },
  { additionalProperties: false, title: 'Limits' },
)

/** The tenant quotas of the limits, max<Name> each, for QuotasSchema. */
export const LIMIT_QUOTA_PROPERTIES = Object.fromEntries(
  LIMIT_NAMES.map((name) => [maxKey(name), limitSchema(name, `Largest ${name} one job may ask for`)]),
) as { [K in LimitName as LimitMaxKey<K>]: TOptional<LimitSchema<K>> }

/** `outputBytes` -> `OUTPUT_BYTES`, as in AIRLOCK_MAX_OUTPUT_BYTES. */
const envName = (field: LimitField) => field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()

export type LimitSettingKey = LimitDefaultKey | LimitMaxKey

/** One AIRLOCK_DEFAULT_* or AIRLOCK_MAX_* setting, for config.ts to parse. */
export interface LimitSetting {
  key: LimitSettingKey
  name: string
  doc: string
  type: LimitDefinition['type']
  default: number
  min: number
  max: number
}

/** Every limit's settings, in the order the README lists them: each default beside its maximum. */
export function limitSettings(): LimitSetting[] {
  const defaultName = (field: LimitField) => `AIRLOCK_DEFAULT_${envName(field)}`
  const maxName = (name: LimitName) => `AIRLOCK_MAX_${envName(name)}`
  const all = LIMIT_NAMES.flatMap((name): LimitSetting[] => {
    const { type, settings } = LIMITS[name]
    const [min, max] = settings.range
    const defaultDoc = settings.defaultDoc
    const maxDoc = `Largest ${name} a job may ask for`
    return [
      { key: defaultKey(name), name: defaultName(name), doc: defaultDoc, type, default: settings.default, min, max },
      { key: maxKey(name), name: maxName(name), doc: maxDoc, type, default: settings.max, min, max },
    ]
  })
  const bound = LIMITS[COMPILE_TIMEOUT.boundedBy]
  const [min, max] = bound.settings.range
  all.push({
    key: defaultKey('compileTimeoutMs'),
    name: defaultName('compileTimeoutMs'),
    doc: `${COMPILE_TIMEOUT.defaultDoc} (its largest is ${maxName(COMPILE_TIMEOUT.boundedBy)})`,
    type: bound.type,
    default: COMPILE_TIMEOUT.default,
    min,
    max,
  })
  return all
}
