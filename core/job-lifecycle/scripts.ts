import { readFileSync } from 'node:fs'
import type { ChainableCommander, Redis } from 'ioredis'
import { TRANSITIONS, type TransitionName } from './transitions.js'

// Numbers the scripts share with TypeScript, given to every script as Lua constants so
// each is defined once.

/**
 * What an ended job holds in Redis beyond what its record counts (input, output, results):
 * its hash's fields, its event stream (Redis gives a stream a 4 KB node up front) and
 * its entries in the tenant's indexes. Measured 6.3 KB for a job cancelled in the queue
 * and up to 8.5 KB for one that ran (its hash past Redis's compact encoding); 2,048 was
 * counted before, so the storage quota held three to four times what it said.
 * test/e2e/service-edge.test.ts measures it against Redis's own MEMORY USAGE.
 */
export const JOB_OVERHEAD_BYTES = 10 * 1024
/**
 * What Redis holds for a job's bytes (its input, output, artifacts and results) per byte
 * counted: a big value takes the allocator's next size class, up to a quarter more (a
 * job of 2 MiB of output in 64 KB writes held 1.25 times its bytes).
 */
export const STORED_VALUE_FACTOR = 1.25
/** What one log event costs Redis beyond its data (its entry, id and fields), counted against the tenant's storage. */
export const LOG_EVENT_OVERHEAD_BYTES = 96
/**
 * Log events one job may write. A program that alternates stdout and stderr a byte at
 * a time makes an event per byte; past this its live log stops and the record keeps
 * its output itself, so neither Redis nor a reader pays for millions of entries.
 */
export const MAX_LOG_EVENTS = 10_000

const LUA_DIR = new URL('./lua/', import.meta.url)
const INCLUDE = /^--- @include "([a-z/-]+)"$/gm

/**
 * A script's text with its includes in place (bullmq's `--- @include` convention) and the
 * constants above it (below its `#!lua` line, which must come first).
 */
export function scriptSource(name: string): string {
  const read = (file: string) => readFileSync(new URL(`${file}.lua`, LUA_DIR), 'utf8')
  const constants = Object.entries({
    JOB_OVERHEAD_BYTES,
    LOG_EVENT_OVERHEAD_BYTES,
    MAX_LOG_EVENTS,
    STORED_VALUE_FACTOR,
  })
    .map(([k, v]) => `local ${k} = ${v}`)
    .join('\n')
  const text = read(name).replace(INCLUDE, (_, include: string) => read(include))
  const shebang = /^#!lua[^\n]*\n/.exec(text)?.[0] ?? ''
  return `${shebang}${constants}\n${text.slice(shebang.length)}`
}

/**
 * Read-only scripts (`lua/reads/`): a job's events and output read in bounded pieces, and
 * a page of a tenant's jobs after a cursor. They move nothing, and answer when Redis is
 * at its maxmemory.
 */
export const READ_SCRIPTS = {
  readEvents: 'reads/read-events',
  readOutput: 'reads/read-output',
  listAfter: 'reads/list-after',
} as const
export type ReadScript = keyof typeof READ_SCRIPTS

/** The ioredis command a script is defined as, on every connection that runs it. */
function commandName(script: TransitionName | ReadScript): string {
  return `airlockJob_${script}`
}

const SOURCES = new Map([
  ...Object.entries(TRANSITIONS).map(([move, t]) => [move, scriptSource(t.script)] as const),
  ...Object.entries(READ_SCRIPTS).map(([name, file]) => [name, scriptSource(file)] as const),
])

/**
 * Defines the job scripts on a connection, once, so each call goes by SHA (EVALSHA)
 * instead of sending the script's text every time; pipelines and transactions made from
 * the connection have them too.
 */
export function defineJobScripts(redis: Redis): void {
  for (const [script, lua] of SOURCES) {
    const name = commandName(script as TransitionName | ReadScript)
    if (!(name in redis)) redis.defineCommand(name, { lua })
  }
}

type Target = Redis | ChainableCommander
type Arg = string | number

type Callback = (err?: Error | null, reply?: unknown) => void

/**
 * Runs a move's script: on a connection (its reply), or queued on a pipeline or
 * transaction (that pipeline; `callback` gets its reply). The connection must have had
 * defineJobScripts.
 */
export function runJobScript(
  target: Redis,
  move: TransitionName,
  keys: readonly string[],
  args: readonly Arg[],
): Promise<unknown>
export function runJobScript(
  target: ChainableCommander,
  move: TransitionName,
  keys: readonly string[],
  args: readonly Arg[],
  callback?: Callback,
): ChainableCommander
export function runJobScript(
  target: Target,
  move: TransitionName,
  keys: readonly string[],
  args: readonly Arg[],
  callback?: Callback,
): unknown {
  const command = (target as unknown as Record<string, (...a: (Arg | Callback)[]) => unknown>)[commandName(move)]
  if (!command) throw new Error(`job script ${move} is not defined on this connection (defineJobScripts)`)
  return command.call(target, keys.length, ...keys, ...args, ...(callback ? [callback] : []))
}

/**
 * Runs a read script on a connection that had defineJobScripts; its reply, with bulk
 * strings as Buffers when `buffers` (output bytes that may split a character).
 */
export function runReadScript(
  redis: Redis,
  script: ReadScript,
  keys: readonly string[],
  args: readonly Arg[],
  buffers = false,
): Promise<unknown> {
  const name = `${commandName(script)}${buffers ? 'Buffer' : ''}`
  const command = (redis as unknown as Record<string, (...a: Arg[]) => Promise<unknown>>)[name]
  if (!command) throw new Error(`read script ${script} is not defined on this connection (defineJobScripts)`)
  return command.call(redis, keys.length, ...keys, ...args)
}
