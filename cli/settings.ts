import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Airlock } from '../sdk/src/index.js'

export interface GlobalFlags {
  url?: string
  key?: string
  config?: string
  raw?: boolean
}

export class UsageError extends Error {}

interface FileSettings {
  url?: string
  apiKey?: string
}

function readSettingsFile(path: string, required: boolean): FileSettings {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new UsageError(`cannot read the config file ${path}: ${(err as Error).message}`)
  }
  try {
    const parsed = JSON.parse(text) as unknown
    if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object')
    const { url, apiKey } = parsed as Record<string, unknown>
    if ((url !== undefined && typeof url !== 'string') || (apiKey !== undefined && typeof apiKey !== 'string'))
      throw new Error('url and apiKey must be strings')
    return { url: url as string | undefined, apiKey: apiKey as string | undefined }
  } catch (err) {
    throw new UsageError(
      `the config file ${path} is not valid: ${(err as Error).message} (expected {"url": "...", "apiKey": "..."})`,
    )
  }
}

/**
 * Where the CLI finds Airlock: flags, then the environment (AIRLOCK_URL,
 * AIRLOCK_API_KEY), then a JSON config file (--config, AIRLOCK_CONFIG, or
 * ~/.config/airlock/config.json).
 */
export function resolveSettings(
  flags: GlobalFlags,
  env: NodeJS.ProcessEnv = process.env,
): { url: string; apiKey: string } {
  const explicit = flags.config ?? (env.AIRLOCK_CONFIG || undefined)
  const file = readSettingsFile(
    explicit ?? join(homedir(), '.config', 'airlock', 'config.json'),
    explicit !== undefined,
  )
  // An empty variable counts as unset, as shells make it easy to export one.
  const url = flags.url ?? (env.AIRLOCK_URL || undefined) ?? file.url ?? 'http://127.0.0.1:8080'
  const apiKey = flags.key ?? (env.AIRLOCK_API_KEY || undefined) ?? file.apiKey
  if (!apiKey) throw new UsageError('an API key is required: --key, AIRLOCK_API_KEY, or apiKey in the config file')
  return { url, apiKey }
}

export function clientFor(flags: GlobalFlags): Airlock {
  const { url, apiKey } = resolveSettings(flags)
  return new Airlock({ baseUrl: url, apiKey })
}

/** "500ms", "10s", "2m" or a number of milliseconds -> milliseconds. */
export function parseDurationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (!m) throw new UsageError(`not a duration: ${JSON.stringify(text)} (e.g. 500ms, 10s, 2m)`)
  const n = Number(m[1])
  return Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n)
}
