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
}

t.test('docker-compose.yml validates with docker-compose config, with an unprivileged API and a privileged worker only', async (t) => {
  const { stdout } = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: root, env: { ...process.env, AIRLOCK_API_KEYS: 'me:a-long-secret-key' } })
  const config = loadYaml<{ services: Record<string, Service>; volumes: Record<string, unknown> }>(stdout)
  t.same(Object.keys(config.services).sort(), ['api', 'redis', 'worker'])
  const { api, worker, redis } = config.services
  t.notOk(api!.privileged, 'the API is not privileged')
  t.equal(api!.read_only, true)
  t.same(api!.cap_drop, ['ALL'])
  t.not(api!.user, undefined, 'the API runs as a non-root user')
  t.equal(worker!.privileged, true, 'runsc needs a container runtime\'s privileges')
  t.equal(worker!.ports, undefined, 'the privileged worker publishes no port')
  t.equal(worker!.environment?.AIRLOCK_API_KEYS, undefined, 'and holds no API keys')
  t.ok(redis!.volumes?.length, 'Redis data persists on a volume')
  t.ok('redis-data' in config.volumes)
})

t.test('docker-compose config refuses to start without API keys', async (t) => {
  const env = { ...process.env }
  delete env.AIRLOCK_API_KEYS
  const err = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, env }).then(() => null, (e: unknown) => e as { stderr: string })
  t.match(err?.stderr, /set AIRLOCK_API_KEYS=tenant:key/)
})
