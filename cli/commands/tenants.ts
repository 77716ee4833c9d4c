import type { Command } from 'commander'
import { ConnectionError, errorFromResponse, pathSegment } from '../../sdk/src/index.js'
import { LIMIT_NAMES, maxKey } from '../../core/limits.js'
import { EXIT } from '../exit-codes.js'
import { UsageError, type GlobalFlags } from '../settings.js'
import { table } from './jobs.js'
import { jsonText, print as printText } from '../terminal.js'

interface AdminFlags extends GlobalFlags {
  adminKey?: string
}

/** The admin API (/v1/admin/tenants), with the operator's admin key. */
class AdminClient {
  constructor(
    private readonly url: string,
    private readonly key: string,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(`${this.url.replace(/\/+$/, '')}/v1/admin/tenants${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
    } catch (err) {
      throw new ConnectionError(
        `cannot reach Airlock at ${this.url}: ${(err as Error).message}`,
        'AIRLOCK_SDK_CONNECTION',
      )
    }
    const text = await res.text()
    const json = text ? (JSON.parse(text) as unknown) : null
    if (res.status >= 400) throw errorFromResponse(res.status, json as never, res.headers.get('retry-after'))
    return json as T
  }
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

const QUOTA_FLAGS: [string, string, string][] = [
  ['--max-running <n>', 'maxRunning', 'jobs running at once (fair share)'],
  ['--max-queued <n>', 'maxQueued', 'jobs queued at once'],
  ['--submits-per-second <n>', 'submitsPerSecond', 'job submissions per second'],
  ...LIMIT_NAMES.map((name): [string, string, string] => {
    const key = maxKey(name)
    return [`--${kebab(key)} <n>`, key, `largest ${name} of one job`]
  }),
  ['--max-stored-bytes <n>', 'maxStoredBytes', 'bytes its jobs may hold in Redis (input and output)'],
  [
    '--retention-seconds <n>',
    'retentionSeconds',
    "how long its finished jobs are kept (only shorter than the server's)",
  ],
]

function quotasFrom(flags: Record<string, string | undefined>): Record<string, number> {
  const quotas: Record<string, number> = {}
  for (const [, key] of QUOTA_FLAGS) {
    const raw = flags[key]
    if (raw === undefined) continue
    const n = Number(raw)
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${kebab(key)} takes a positive number`)
    quotas[key] = n
  }
  return quotas
}

/** `airlock tenants ...`: operator commands over the admin API. */
export function addTenantCommands(
  program: Command,
  globals: () => GlobalFlags,
  action: <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>,
): void {
  const tenants = program
    .command('tenants')
    .description('tenants, API keys, quotas and audit (admin API; --admin-key or AIRLOCK_ADMIN_KEY)')
    .option(
      '--admin-key <key>',
      'the operator credential (env AIRLOCK_ADMIN_KEY; a flag is seen by every user of the machine in ps: prefer the env)',
    )
  const client = () => {
    const flags: AdminFlags = { ...globals(), ...tenants.opts<AdminFlags>() }
    const key = flags.adminKey ?? (process.env.AIRLOCK_ADMIN_KEY || undefined)
    if (!key) throw new UsageError('the admin key is required: --admin-key or AIRLOCK_ADMIN_KEY')
    return new AdminClient(flags.url ?? (process.env.AIRLOCK_URL || 'http://127.0.0.1:8080'), key)
  }
  const print = (json: boolean | undefined, data: unknown, human: string) =>
    printText(process.stdout, json ? `${jsonText(data)}\n` : `${human}\n`)

  const withQuotas = (cmd: Command) => {
    for (const [flag, , doc] of QUOTA_FLAGS) cmd.option(flag, doc)
    return cmd
  }
  withQuotas(
    tenants.command('create').description('create a tenant').argument('<name>').option('--json', 'print JSON'),
  ).action(
    action(async (name: string, flags: Record<string, string | undefined> & { json?: boolean }) => {
      const tenant = await client().call('POST', '/', { name, quotas: quotasFrom(flags) })
      print(flags.json, tenant, `created tenant ${name}; issue a key with: airlock tenants keys issue ${name}`)
      return EXIT.ok
    }),
  )
  tenants
    .command('list')
    .description('tenant names')
    .option('--json', 'print JSON')
    .action(
      action(async (flags: { json?: boolean }) => {
        const { tenants: names } = await client().call<{ tenants: string[] }>('GET', '/')
        print(flags.json, names, names.join('\n'))
        return EXIT.ok
      }),
    )
  tenants
    .command('get')
    .description('a tenant with its quotas and keys')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(
      action(async (name: string, flags: { json?: boolean }) => {
        const t = await client().call<{
          name: string
          quotas: object
          keys: { keyId: string; role: string; prefix: string; createdAt: string; revokedAt: string | null }[]
        }>('GET', `/${pathSegment(name, 'tenant')}`)
        print(
          flags.json,
          t,
          `${t.name}  quotas ${JSON.stringify(t.quotas)}\n${table([['KEY', 'ROLE', 'PREFIX', 'CREATED', 'REVOKED'], ...t.keys.map((k) => [k.keyId, k.role, `${k.prefix}...`, k.createdAt, k.revokedAt ?? '-'])])}`,
        )
        return EXIT.ok
      }),
    )
  withQuotas(
    tenants
      .command('quotas')
      .description("replace a tenant's quotas")
      .argument('<name>')
      .option('--json', 'print JSON'),
  ).action(
    action(async (name: string, flags: Record<string, string | undefined> & { json?: boolean }) => {
      const t = await client().call<{ quotas: object }>(
        'PUT',
        `/${pathSegment(name, 'tenant')}/quotas`,
        quotasFrom(flags),
      )
      print(flags.json, t, `quotas of ${name}: ${JSON.stringify(t.quotas)}`)
      return EXIT.ok
    }),
  )
  const keys = tenants.command('keys').description("a tenant's API keys")
  keys
    .command('issue')
    .description('issue a key; it is shown this once')
    .argument('<tenant>')
    .option('--role <role>', 'member, or admin (may read the audit trail)', 'member')
    .option('--json', 'print JSON')
    .action(
      action(async (tenant: string, flags: { role: string; json?: boolean }) => {
        if (!['member', 'admin'].includes(flags.role)) throw new UsageError('--role is member or admin')
        const issued = await client().call<{ key: string; info: { keyId: string } }>(
          'POST',
          `/${pathSegment(tenant, 'tenant')}/keys`,
          { role: flags.role },
        )
        print(
          flags.json,
          issued,
          `${issued.key}\n(key id ${issued.info.keyId}; this is the only time the key is shown)`,
        )
        return EXIT.ok
      }),
    )
  keys
    .command('revoke')
    .description('revoke a key at once on every replica')
    .argument('<tenant>')
    .argument('<keyId>')
    .action(
      action(async (tenant: string, keyId: string) => {
        await client().call('DELETE', `/${pathSegment(tenant, 'tenant')}/keys/${pathSegment(keyId, 'key id')}`)
        printText(process.stdout, `revoked ${keyId}\n`)
        return EXIT.ok
      }),
    )
  tenants
    .command('audit')
    .description("a tenant's audit trail, newest first")
    .argument('<name>')
    .option('--limit <n>', 'entries', '50')
    .option('--json', 'print JSON')
    .action(
      action(async (name: string, flags: { limit: string; json?: boolean }) => {
        const { entries } = await client().call<{
          entries: { at: string; actor: string; action: string; detail: string }[]
        }>('GET', `/${pathSegment(name, 'tenant')}/audit?limit=${encodeURIComponent(flags.limit)}`)
        print(
          flags.json,
          entries,
          table([['AT', 'ACTOR', 'ACTION', 'DETAIL'], ...entries.map((e) => [e.at, e.actor, e.action, e.detail])]),
        )
        return EXIT.ok
      }),
    )
}
