import t from 'tap'
import { ConfigError, loadConfig, parseApiKeys } from '../../core/config.js'

function errorOf(env: Record<string, string>): ConfigError | undefined {
  try {
    loadConfig(env)
    return undefined
  } catch (err) {
    return err as ConfigError
  }
}

t.test('defaults follow the documented contract', async (t) => {
  const config = loadConfig({})
  t.equal(config.port, 8080)
  t.equal(config.redisUrl, 'redis://127.0.0.1:6379')
  t.equal(config.executor, 'local')
  t.equal(config.tenantsByKey.size, 0)
})

t.test('a bad value names the variable and what is allowed', async (t) => {
  t.match(errorOf({ PORT: 'eighty' })?.message, /PORT: expected an integer/)
  t.match(errorOf({ PORT: '70000' })?.message, /PORT: must be between 0 and 65535/)
  t.match(errorOf({ REDIS_URL: 'http://x' })?.message, /REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/)
  t.match(errorOf({ AIRLOCK_EXECUTOR: 'docker' })?.message, /AIRLOCK_EXECUTOR: must be one of local/)
  t.match(errorOf({ AIRLOCK_DEFAULT_CPUS: 'NaN' })?.message, /AIRLOCK_DEFAULT_CPUS: expected a number/)
  t.equal(
    errorOf({ AIRLOCK_DEFAULT_MEMORY_MB: '4096', AIRLOCK_MAX_MEMORY_MB: '1024' })?.variable,
    'AIRLOCK_DEFAULT_MEMORY_MB',
  )
})

t.test('API keys parse into key -> tenant and reject malformed entries', async (t) => {
  const keys = parseApiKeys('alice:alice-secret-1, bob:bob-secret-22')
  t.equal(keys.get('alice-secret-1'), 'alice')
  t.equal(keys.get('bob-secret-22'), 'bob')
  t.throws(() => parseApiKeys('alice'), ConfigError)
  t.throws(() => parseApiKeys('alice:short'), /at least 8 characters/)
  t.throws(() => parseApiKeys('a:same-key-123,b:same-key-123'), /declared twice/)
  t.throws(() => parseApiKeys('bad tenant:some-long-key'), ConfigError)
})

t.test('AIRLOCK_WARM_POOL parses into bounds per runtime and refuses what it cannot honour', async (t) => {
  const sizes = loadConfig({ AIRLOCK_WARM_POOL: 'bash=1:4,python=0:8' }).warmPoolSizes
  t.same(
    [...sizes],
    [
      ['bash', { min: 1, max: 4 }],
      ['python', { min: 0, max: 8 }],
    ],
  )
  t.equal(loadConfig({}).warmPoolSizes.get('python')?.min, 1, 'on by default')
  t.equal(loadConfig({ AIRLOCK_WARM_POOL: 'none' }).warmPoolSizes.size, 0, 'none: no pool')
  t.match(errorOf({ AIRLOCK_WARM_POOL: 'bash=4:1' })?.message, /AIRLOCK_WARM_POOL: bash: min must not exceed max/)
  t.match(errorOf({ AIRLOCK_WARM_POOL: 'cobol=1:2' })?.message, /AIRLOCK_WARM_POOL: unknown runtime cobol/)
  t.match(errorOf({ AIRLOCK_WARM_POOL: 'bash=1:2,bash=1:3' })?.message, /given twice/)
  t.match(errorOf({ AIRLOCK_WARM_POOL: 'bash=1:99' })?.message, /max must be at most 64/)
  t.match(errorOf({ AIRLOCK_WARM_POOL: 'bash' })?.message, /AIRLOCK_WARM_POOL: must be none, or runtime=min:max pairs/)
})
