import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { loadYaml } from '@kubernetes/client-node'

const run = promisify(execFile)
const root = new URL('../..', import.meta.url).pathname

interface Service {
  privileged?: boolean
  read_only?: boolean
  cap_drop?: string[]
  user?: string
  ports?: unknown[]
  environment?: Record<string, string>
  volumes?: unknown[]
  command?: string | string[]
  secrets?: (string | { source: string })[]
  healthcheck?: { test?: string | string[] }
}

interface Compose {
  services: Record<string, Service>
  volumes: Record<string, unknown>
  secrets?: Record<string, { file?: string }>
}

async function composeConfig(env: Record<string, string> = {}): Promise<Compose> {
  const { stdout } = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    cwd: root,
    env: { ...process.env, AIRLOCK_API_KEYS: 'me:a-long-secret-key', ...env },
  })
  return loadYaml<Compose>(stdout)
}

const commandOf = (s: Service | undefined) => [s?.command ?? []].flat().join(' ')
const secretsOf = (s: Service | undefined) => (s?.secrets ?? []).map((x) => (typeof x === 'string' ? x : x.source))

t.test(
  'docker-compose.yml validates with docker-compose config, with an unprivileged API and a privileged worker only',
  async (t) => {
    const config = await composeConfig()
    t.same(Object.keys(config.services).sort(), ['api', 'redis', 'worker'])
    const { api, worker, redis } = config.services
    t.notOk(api!.privileged, 'the API is not privileged')
    t.equal(api!.read_only, true)
    t.same(api!.cap_drop, ['ALL'])
    t.not(api!.user, undefined, 'the API runs as a non-root user')
    t.equal(worker!.privileged, true, "runsc needs a container runtime's privileges")
    t.equal(worker!.ports, undefined, 'the privileged worker publishes no port')
    t.equal(worker!.environment?.AIRLOCK_API_KEYS, undefined, 'and holds no API keys')
    t.ok(redis!.volumes?.length, 'Redis data persists on a volume')
    t.ok('redis-data' in config.volumes)
  },
)

t.test(
  'Redis is capped with noeviction and wants the password from the redis_password secret, which API and worker read as a file',
  async (t) => {
    const config = await composeConfig()
    const { api, worker, redis } = config.services
    const redisCommand = commandOf(redis)
    t.match(redisCommand, /--maxmemory 1gb\b/, 'capped at AIRLOCK_REDIS_MAXMEMORY, 1gb by default')
    t.match(redisCommand, /--maxmemory-policy noeviction\b/, 'a full Redis refuses writes instead of evicting keys')
    t.match(redisCommand, /cat \/run\/secrets\/redis_password/, 'the password comes from the secret')
    t.match(redisCommand, /--requirepass "\$\$password"/)
    t.match(redisCommand, /\[ -n "\$\$password" \] \|\| \{[^}]*exit 1; \}/, 'no password, no Redis (never an open one)')
    t.match(
      config.secrets?.redis_password?.file,
      /\/\.airlock\/redis-password$/,
      'the secret is the file scripts/compose-secrets.sh makes',
    )
    t.match(
      [redis?.healthcheck?.test ?? []].flat().join(' '),
      /REDISCLI_AUTH=\$\$\(cat \/run\/secrets\/redis_password\).*= PONG/,
      'the healthcheck authenticates and wants PONG',
    )
    for (const [name, service] of [
      ['api', api],
      ['worker', worker],
    ] as const) {
      t.ok(secretsOf(service).includes('redis_password'), `${name} reads the secret`)
      t.equal(
        service?.environment?.REDIS_PASSWORD_FILE,
        '/run/secrets/redis_password',
        `${name} reads the password from the secret's file`,
      )
      t.equal(service?.environment?.REDIS_URL, 'redis://redis:6379', `${name}'s REDIS_URL holds no password`)
      t.notMatch(commandOf(service), /password/, `${name}: the password is in no command`)
    }
    t.ok(secretsOf(redis).includes('redis_password'))

    const smaller = await composeConfig({ AIRLOCK_REDIS_MAXMEMORY: '256mb' })
    t.match(
      commandOf(smaller.services.redis),
      /--maxmemory 256mb --maxmemory-policy noeviction/,
      'AIRLOCK_REDIS_MAXMEMORY sets the cap',
    )
  },
)

t.test('only the API port is published: /metrics stays on its own listener, unpublished', async (t) => {
  const { api } = (await composeConfig()).services
  const published = (api?.ports ?? []).map((p) =>
    typeof p === 'object' && p !== null
      ? String((p as { published?: unknown }).published)
      : String(p).split(':').at(-2),
  )
  t.same(published, ['8080'])
  t.notOk(JSON.stringify(api?.ports).includes('9464'), 'the metrics port is not published')
})

t.test('docker-compose config refuses to start without API keys', async (t) => {
  const env = { ...process.env }
  delete env.AIRLOCK_API_KEYS
  const err = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, env }).then(
    () => null,
    (e: unknown) => e as { stderr: string },
  )
  t.match(err?.stderr, /set AIRLOCK_API_KEYS=tenant:key/)
})
