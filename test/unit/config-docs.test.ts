import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../../core/config.js'
import { settingsTable } from '../../core/config-docs.js'
import { ErrorCodes } from '../../core/errors.js'

t.test("the README's settings table is the generated one", async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const m = /<!-- settings:start[^>]*-->\n([\s\S]*?)<!-- settings:end -->/.exec(readme)
  t.ok(m, 'the README has the settings markers')
  t.equal(m?.[1]?.trim(), settingsTable().trim(), 'regenerate with: npm run build && node dist/core/config-docs.js')
})

t.test("the README's list of error codes names every code of the catalogue", async (t) => {
  // Review 23 found two codes a client could get that the list did not name.
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const [from, to] = [readme.indexOf('Errors always have the shape'), readme.indexOf('`AIRLOCK_ERR_INTERNAL` (500)')]
  t.ok(from >= 0 && to > from, 'the README has the list')
  const list = readme.slice(from, to)
  for (const code of Object.keys(ErrorCodes).filter((c) => c !== 'AIRLOCK_ERR_INTERNAL'))
    t.ok(list.includes(`\`${code}\``), code)
})

t.test('settings can come from a file; the environment wins; typos stop the process', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'airlock.env')
  await writeFile(file, '# comment\nPORT=9090\nAIRLOCK_WORKER_CONCURRENCY="4"\nAIRLOCK_API_KEYS=t1:file-key-0001\n')
  const config = loadConfig({ AIRLOCK_CONFIG_FILE: file, PORT: '7070' })
  t.equal(config.port, 7070, 'the environment wins')
  t.equal(config.workerConcurrency, 4)
  t.equal(config.tenantsByKey.get('file-key-0001'), 't1')

  await writeFile(file, 'AIRLOCK_WORKER_CONCURENCY=4\n')
  t.throws(() => loadConfig({ AIRLOCK_CONFIG_FILE: file }), /unknown setting AIRLOCK_WORKER_CONCURENCY/)
  await writeFile(file, 'PORT=http\n')
  t.throws(() => loadConfig({ AIRLOCK_CONFIG_FILE: file }), /PORT: expected an integer/)
  t.throws(() => loadConfig({ AIRLOCK_CONFIG_FILE: join(dir, 'missing.env') }), ConfigError)
})

t.test(
  'any setting can come from a file of its own (NAME_FILE), as a mounted Secret gives it; NAME wins',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-secrets-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    await writeFile(join(dir, 'AIRLOCK_API_KEYS'), 'team-a:key-from-a-file-01\n')
    await writeFile(join(dir, 'REDIS_PASSWORD'), 'd3adb33f')
    const config = loadConfig({
      AIRLOCK_API_KEYS_FILE: join(dir, 'AIRLOCK_API_KEYS'),
      REDIS_PASSWORD_FILE: join(dir, 'REDIS_PASSWORD'),
      REDIS_URL: 'redis://redis.example.svc:6379',
    })
    t.equal(config.tenantsByKey.get('key-from-a-file-01'), 'team-a', "the file's value, its last newline dropped")
    t.equal(
      config.redisUrl,
      'redis://:d3adb33f@redis.example.svc:6379',
      'REDIS_PASSWORD goes into a REDIS_URL without one',
    )
    t.equal(
      loadConfig({ REDIS_URL: 'redis://:own@r:6379', REDIS_PASSWORD: 'other' }).redisUrl,
      'redis://:own@r:6379',
      "a URL's own password stands",
    )
    t.equal(
      loadConfig({
        AIRLOCK_API_KEYS: 'b:env-key-000000001',
        AIRLOCK_API_KEYS_FILE: join(dir, 'AIRLOCK_API_KEYS'),
      }).tenantsByKey.get('env-key-000000001'),
      'b',
      'NAME wins over NAME_FILE',
    )
    t.throws(() => loadConfig({ AIRLOCK_API_KEYS_FILE: join(dir, 'missing') }), /AIRLOCK_API_KEYS_FILE: cannot read/)
    await writeFile(join(dir, 'airlock.env'), `AIRLOCK_API_KEYS_FILE=${join(dir, 'AIRLOCK_API_KEYS')}\n`)
    t.equal(
      loadConfig({ AIRLOCK_CONFIG_FILE: join(dir, 'airlock.env') }).tenantsByKey.get('key-from-a-file-01'),
      'team-a',
      'NAME_FILE may stand in the settings file too',
    )
  },
)
