import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Airlock, ValidationError } from '../../sdk/src/index.js'

// Found by review 21: a URL parser removes `.` and `..` segments, so a job id or an
// artifact path of dots reached another route with the caller's key
// (`jobs.artifact(id, '../../<another job>/logs')` read that job's output).

t.test('a path segment that would name another route is refused before anything is sent', async (t) => {
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(req.url ?? '')
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const airlock = new Airlock({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    apiKey: 'k',
    maxRetries: 0,
  })
  const id = 'job_00000000000000000000000000000001'
  const refused: [string, () => Promise<unknown>][] = [
    ['get ..', () => airlock.jobs.get('..')],
    ['get (empty)', () => airlock.jobs.get('')],
    ['cancel .', () => airlock.jobs.cancel('.')],
    ['logs ..', () => airlock.jobs.logs('..')],
    ['request ..', () => airlock.jobs.request('..')],
    ['artifact a/../../b', () => airlock.jobs.artifact(id, 'a/../../b')],
    ['artifact ../x', () => airlock.jobs.artifact(id, '../x')],
    ['artifact a//b', () => airlock.jobs.artifact(id, 'a//b')],
    ['stream ..', () => airlock.jobs.stream('..').next()],
  ]
  for (const [name, call] of refused) {
    const err = await call().catch((e: unknown) => e)
    t.ok(err instanceof ValidationError, `${name}: ValidationError`)
    t.match(err, { code: 'AIRLOCK_SDK_INVALID_PATH' }, name)
  }
  t.same(seen, [], 'no request was sent')
  await airlock.jobs.artifact(id, '%2e%2e/x..y/.z')
  await airlock.jobs.get('a.b')
  t.same(
    seen,
    [`/v1/jobs/${id}/artifacts/%252e%252e/x..y/.z`, '/v1/jobs/a.b'],
    'anything else goes, percent-encoded, to the route it names',
  )
})

t.test('a base URL with credentials, or not http(s), is refused at construction, without echoing them', async (t) => {
  // Found by review 21: `user:key@` in the base URL ended up in error messages and bench reports.
  for (const baseUrl of ['http://user:s3cret@127.0.0.1:1', 'https://:s3cret@example.test', 'ftp://127.0.0.1', 'nope']) {
    const err = (() => {
      try {
        new Airlock({ baseUrl, apiKey: 'k' })
      } catch (e) {
        return e
      }
    })()
    t.match(err, { code: 'AIRLOCK_SDK_CONFIG' }, baseUrl)
    t.notMatch(String((err as Error).message), /s3cret/, `${baseUrl}: the secret is not in the message`)
  }
  t.ok(new Airlock({ baseUrl: 'https://airlock.example.test/base/', apiKey: 'k' }), 'a plain one is taken')
})
