import { Type, type Static } from 'typebox'

/**
 * Piston v2's shapes (engineer-man/piston docs/api-v2.md and api/src/api/v2.js). Fields
 * Piston does not know are ignored, as Piston ignores them: its clients send extras
 * (`log`, `name` on a single file, ...). The bounds of what becomes a job (files,
 * stdin, args, limits) are the job's own, checked on the job request it becomes
 * (execute.ts), so they are written once.
 */

/** The limits a request may set, with Piston's units: milliseconds and bytes. */
export const LIMIT_FIELDS = [
  'compile_timeout',
  'run_timeout',
  'compile_cpu_time',
  'run_cpu_time',
  'compile_memory_limit',
  'run_memory_limit',
] as const
export type LimitField = (typeof LIMIT_FIELDS)[number]

export const PISTON_ENCODINGS = ['utf8', 'base64', 'hex'] as const

// null, 0 and (for memory) -1 mean "the default", as in Piston, whose clients send them.
const Limit = Type.Optional(Type.Union([Type.Number(), Type.Null()]))

export const PistonFileSchema = Type.Object({
  name: Type.Optional(
    Type.String({
      description:
        'Path in the workspace; the first UTF-8 file without one is named as the runtime expects (main.py, Main.java, ...)',
    }),
  ),
  content: Type.String(),
  encoding: Type.Optional(
    Type.Enum(PISTON_ENCODINGS, { type: 'string', description: 'utf8 (default), base64 or hex' }),
  ),
})

/**
 * The longest `language` or `version` a request may name: every listed one is far
 * shorter, and a version is parsed as a SemVer range (semver keeps the last 1,000 ranges
 * it parsed, so an unbounded one is memory held for anyone who asks).
 */
export const PISTON_SELECTOR_MAX_LENGTH = 64

export const PistonExecuteSchema = Type.Object({
  language: Type.String({
    maxLength: PISTON_SELECTOR_MAX_LENGTH,
    description: 'A language or alias of GET /api/v2/runtimes',
  }),
  version: Type.String({
    maxLength: PISTON_SELECTOR_MAX_LENGTH,
    description: "A SemVer range (or *) the runtime's version must satisfy",
  }),
  files: Type.Array(PistonFileSchema, { minItems: 1, description: 'The first UTF-8 file is the one run' }),
  stdin: Type.Optional(Type.String()),
  args: Type.Optional(Type.Array(Type.String())),
  ...(Object.fromEntries(LIMIT_FIELDS.map((f) => [f, Limit])) as Record<LimitField, typeof Limit>),
})
export type PistonExecute = Static<typeof PistonExecuteSchema>

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

/** One stage (compile or run) of an execution, as Piston reports it. */
export const PistonStageSchema = Type.Object({
  stdout: Type.String(),
  stderr: Type.String(),
  output: Type.String({ description: 'stdout and stderr in the order they were written' }),
  code: Nullable(Type.Integer()),
  signal: Nullable(Type.String()),
  message: Nullable(Type.String()),
  status: Nullable(
    Type.String({
      description: 'RE runtime error, SG killed by a signal (or out of memory), TO timeout, XX internal error',
    }),
  ),
  cpu_time: Nullable(Type.Number()),
  wall_time: Nullable(Type.Number()),
  memory: Nullable(Type.Number()),
})
export type PistonStage = Static<typeof PistonStageSchema>

export const PistonResultSchema = Type.Object({
  language: Type.String(),
  version: Type.String(),
  run: PistonStageSchema,
  compile: Type.Optional(PistonStageSchema),
})

export const PistonRuntimeListSchema = Type.Array(
  Type.Object({
    language: Type.String(),
    version: Type.String(),
    aliases: Type.Array(Type.String()),
    runtime: Type.Optional(Type.String()),
  }),
)

export const PistonPackageListSchema = Type.Array(
  Type.Object({ language: Type.String(), language_version: Type.String(), installed: Type.Boolean() }),
)

/** Piston's error shape, with Airlock's stable code beside its message. */
export const PistonErrorSchema = Type.Object({
  message: Type.String(),
  code: Type.Optional(Type.String({ description: 'AIRLOCK_ERR_*' })),
})

export function pistonErrors<S extends number>(...statuses: S[]): Record<S, typeof PistonErrorSchema> {
  return Object.fromEntries(statuses.map((s) => [s, PistonErrorSchema])) as Record<S, typeof PistonErrorSchema>
}
