import t from 'tap'
import { LOGGED_URL_MAX, redactUrl } from '../../core/logger.js'

t.test('a logged request target carries no credentials', async (t) => {
  const cases: [string, string][] = [
    // The user and password of an absolute-form target (Piston's clients put a key there).
    [
      'http://airlock:ak_secret@127.0.0.1:8080/piston/api/v2/runtimes',
      'http://[redacted]@127.0.0.1:8080/piston/api/v2/runtimes',
    ],
    ['http://ak_secret@host/v1/jobs?limit=5', 'http://[redacted]@host/v1/jobs?limit=5'],
    ['https://a:b@c@host/x', 'https://[redacted]@host/x'],
    // A '@' after the authority is not a password.
    ['http://host/v1/jobs/a@b', 'http://host/v1/jobs/a@b'],
    ['/v1/jobs/a@b', '/v1/jobs/a@b'],
    // Stream tokens however their name is spelled, and values no route reads.
    [
      '/v1/jobs/x/stream?token=st_1&%74oken=st_2&from=3',
      '/v1/jobs/x/stream?token=[redacted]&%74oken=[redacted]&from=3',
    ],
    ['/v1/jobs?api_key=ak_secret&limit=2', '/v1/jobs?api_key=[redacted]&limit=2'],
    ['/v1/jobs?ak_secret', '/v1/jobs?[redacted]'],
    ['/v1/jobs?%zz=ak_secret', '/v1/jobs?%zz=[redacted]'],
    // What the routes read and is no secret stays, to tell requests apart.
    [
      '/judge0/submissions?page=2&per_page=5&base64_encoded=true&fields=stdout&wait=true',
      '/judge0/submissions?page=2&per_page=5&base64_encoded=true&fields=stdout&wait=true',
    ],
    ['/v1/jobs?status=queued&cursor=1.job_00', '/v1/jobs?status=queued&cursor=1.job_00'],
  ]
  for (const [url, logged] of cases) t.equal(redactUrl(url), logged, url)
  const long = redactUrl(`/v1/jobs?limit=${'1'.repeat(10_000)}`)
  t.ok(long.length < LOGGED_URL_MAX + 32, `a 10 KB target is logged as ${long.length} characters`)
})
