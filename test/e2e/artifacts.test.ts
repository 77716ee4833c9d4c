import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Airlock } from '../../sdk/src/index.js'
import type { Job } from '../../core/job.js'
import { build, TENANTS } from '../helper.js'

// Files back from jobs (artifacts) and files into them as bytes, through the API, the
// TypeScript SDK and the CLI, in real gVisor sandboxes; and the CLI running a project.
const ARTIFACT_BYTES = 256 * 1024
const h = await build(t, { listen: true, env: { AIRLOCK_ARTIFACT_BYTES: String(ARTIFACT_BYTES) } })
const sdk = new Airlock({ baseUrl: h.baseUrl, apiKey: TENANTS.alice })
const CLI = new URL('../../dist/bin/airlock.js', import.meta.url).pathname
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (scripts/test.sh does)`)
const dir = await mkdtemp(join(tmpdir(), 'airlock-artifacts-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
/** The CLI's environment: this server, alice's key, a home of its own. */
const cliEnv = { PATH: process.env.PATH ?? '', HOME: dir, AIRLOCK_URL: h.baseUrl, AIRLOCK_API_KEY: TENANTS.alice }

async function artifact(job: Job, path: string, tenant: 'alice' | 'bob' = 'alice') {
  return h.app.inject({
    method: 'GET',
    url: `/v1/jobs/${job.id}/artifacts/${path}`,
    headers: { authorization: `Bearer ${TENANTS[tenant]}` },
  })
}

t.test('files a job leaves in /workspace/out come back listed and byte for byte; links and pipes do not', async (t) => {
  const job = await h.run({
    runtime: 'python',
    source: [
      'import os',
      'os.makedirs("out/plots/deep", exist_ok=True)',
      'open("out/all-bytes.bin", "wb").write(bytes(range(256)) * 4)',
      'open("out/plots/deep/r.csv", "w").write("a,b\\n1,2\\n")',
      'open("out/empty.txt", "w").close()',
      'os.symlink("/etc/passwd", "out/passwd-link")',
      'os.mkfifo("out/pipe")',
      'print("done")',
    ].join('\n'),
  })
  t.equal(job.status, 'succeeded', job.stderr)
  t.same(job.artifacts, [
    { path: 'all-bytes.bin', bytes: 1024, contentType: 'application/octet-stream' },
    { path: 'empty.txt', bytes: 0, contentType: 'text/plain' },
    { path: 'plots/deep/r.csv', bytes: 8, contentType: 'text/csv' },
  ])
  const bin = await artifact(job, 'all-bytes.bin')
  t.equal(bin.statusCode, 200)
  t.ok(
    bin.rawPayload.equals(
      Buffer.concat(Array.from({ length: 4 }, () => Buffer.from(Array.from({ length: 256 }, (_, i) => i)))),
    ),
    'every byte as written',
  )
  t.equal(bin.headers['content-type'], 'application/octet-stream')
  t.equal(bin.headers['content-disposition'], `attachment; filename="all-bytes.bin"; filename*=UTF-8''all-bytes.bin`)
  t.equal(bin.headers['x-content-type-options'], 'nosniff')
  t.match(bin.headers['content-security-policy'], /sandbox/)
  t.equal((await artifact(job, 'plots/deep/r.csv')).body, 'a,b\n1,2\n', 'a nested path, slashes as they are')
  t.equal((await artifact(job, 'plots%2Fdeep%2Fr.csv')).body, 'a,b\n1,2\n', 'and percent-encoded')
  t.equal((await artifact(job, 'empty.txt')).rawPayload.length, 0)
  for (const missing of ['passwd-link', 'pipe', 'nope', '../../etc/passwd'])
    t.equal((await artifact(job, missing)).statusCode, 404, `${missing}: not an artifact`)
  t.equal((await artifact(job, 'all-bytes.bin', 'bob')).statusCode, 404, "another tenant cannot read the job's files")
  t.ok(
    Buffer.from(await sdk.jobs.artifact(job.id, 'plots/deep/r.csv')).equals(Buffer.from('a,b\n1,2\n')),
    'the TypeScript SDK reads one',
  )
})

t.test('a job cannot leave more than AIRLOCK_ARTIFACT_BYTES: the directory is full for it', async (t) => {
  const job = await h.run({
    runtime: 'python',
    source: [
      'import errno',
      'try:',
      `    open("out/big", "wb").write(b"x" * ${ARTIFACT_BYTES * 2})`,
      'except OSError as e:',
      '    print(errno.errorcode[e.errno])',
      // A sparse file takes no room but would read as a terabyte of zeros.
      'try:',
      '    with open("out/sparse", "wb") as f: f.truncate(1 << 40)',
      '    print("sparse")',
      'except OSError as e:',
      '    print(errno.errorcode[e.errno])',
    ].join('\n'),
  })
  t.match(job.stdout, /^ENOSPC\n/, 'the write past the cap fails inside the sandbox')
  const total = job.artifacts.reduce((n, a) => n + a.bytes, 0)
  t.ok(total <= ARTIFACT_BYTES, `what came back (${total} bytes) is within the cap`)
  t.notOk(
    job.artifacts.some((a) => a.path === 'sparse'),
    `a sparse terabyte (${job.stdout.split('\n')[1]}) is not read back`,
  )
  t.equal((await h.request('GET', '/healthz')).statusCode, 200, 'and the service is fine')
})

t.test('a binary file sent in base64 reaches the program byte for byte, and can come back', async (t) => {
  const bytes = randomBytes(4096)
  const job = await h.run({
    runtime: 'bash',
    files: [
      { path: 'main.sh', content: 'sha256sum data.bin | cut -d" " -f1; cp data.bin out/copy.bin' },
      { path: 'data.bin', content: bytes.toString('base64'), encoding: 'base64' },
    ],
  })
  t.equal(job.status, 'succeeded', job.stderr)
  const { createHash } = await import('node:crypto')
  t.equal(job.stdout.trim(), createHash('sha256').update(bytes).digest('hex'))
  t.ok((await artifact(job, 'copy.bin')).rawPayload.equals(bytes))
  const bad = await h.request('POST', '/v1/jobs', {
    runtime: 'bash',
    files: [{ path: 'main.sh', content: 'not base64!', encoding: 'base64' }],
  })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'AIRLOCK_ERR_INVALID_FILE')
})

// The two jobs of the issue: an ml-python plot and a C program's binary output, each
// run with the CLI (--out), then read through the API, the TypeScript SDK and the
// Python SDK: four copies, byte for byte the same.
const python =
  process.env.AIRLOCK_PYTHON ??
  (
    await promisify(execFile)('bash', [new URL('../../scripts/python-sdk-env.sh', import.meta.url).pathname])
  ).stdout.trim()
const C_PROGRAM = `#include <stdio.h>
int main(void) {
  FILE *f = fopen("out/table.bin", "wb");
  for (int i = 0; i < 4096; i++) fputc((unsigned char)(i * 37 + 11), f);
  fclose(f);
  puts("wrote");
  return 0;
}
`
const PLOT = [
  'import matplotlib',
  'matplotlib.use("Agg")',
  'import matplotlib.pyplot as plt',
  'plt.plot([1, 2, 3], [1, 4, 9])',
  'plt.savefig("out/plot.png")',
  'print("saved")',
].join('\n')

for (const [name, runtime, file, source, artifactPath] of [
  ['an ml-python job saves a matplotlib PNG', 'ml-python', 'plot.py', PLOT, 'plot.png'],
  ['a C job writes a binary', 'c', 'main.c', C_PROGRAM, 'table.bin'],
] as const) {
  t.test(`${name}: it comes back byte for byte through the CLI, the API and both SDKs`, async (t) => {
    const work = join(dir, runtime)
    await mkdir(work, { recursive: true })
    await writeFile(join(work, file), source)
    const env = cliEnv
    const cli = await promisify(execFile)(
      process.execPath,
      [CLI, 'run', join(work, file), '--runtime', runtime, '--timeout', '60s', '--out', join(work, 'out'), '--json'],
      { env },
    )
    const job = JSON.parse(cli.stdout) as Job
    t.equal(job.status, 'succeeded', job.stderr)
    const fromCli = await readFile(join(work, 'out', artifactPath))
    t.match(job.artifacts, [{ path: artifactPath, bytes: fromCli.length }])
    if (runtime === 'c') {
      t.ok(
        fromCli.equals(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37 + 11) & 0xff))),
        'the bytes the C program wrote',
      )
      t.equal(job.artifacts[0]!.contentType, 'application/octet-stream')
    } else {
      t.ok(
        fromCli.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
        'a PNG (its signature)',
      )
      t.equal(job.artifacts[0]!.contentType, 'image/png')
    }
    const viaApi = await artifact(job, artifactPath)
    t.ok(viaApi.rawPayload.equals(fromCli), 'the API')
    t.equal(viaApi.headers['content-type'], 'application/octet-stream', 'served as bytes, whatever the file is')
    t.ok(Buffer.from(await sdk.jobs.artifact(job.id, artifactPath)).equals(fromCli), 'the TypeScript SDK')
    const py = await promisify(execFile)(
      python,
      [
        '-c',
        'import sys; from airlock import Airlock\nwith Airlock() as a: sys.stdout.buffer.write(a.jobs.artifact(sys.argv[1], sys.argv[2]))',
        job.id,
        artifactPath,
      ],
      // No __pycache__ in the checkout: the suite leaves the work tree as it found it.
      {
        env: {
          ...env,
          PYTHONPATH: new URL('../../sdk-python', import.meta.url).pathname,
          PYTHONDONTWRITEBYTECODE: '1',
        },
        encoding: 'buffer',
      },
    )
    t.ok(py.stdout.equals(fromCli), 'the Python SDK')
  })
}

t.test('airlock run on a three-file python project with a local import, piped stdin, and --out', async (t) => {
  const proj = join(dir, 'proj')
  await mkdir(join(proj, 'lib'), { recursive: true })
  await mkdir(join(proj, '__pycache__'), { recursive: true })
  await writeFile(
    join(proj, 'main.py'),
    'import sys\nfrom util import shout\nfrom lib.helper import twice\nline = sys.stdin.read().strip()\nprint(shout(twice(line)))\nopen("out/seen.bin", "wb").write(open("blob.bin", "rb").read())\n',
  )
  await writeFile(join(proj, 'util.py'), 'def shout(s):\n    return s.upper() + "!"\n')
  await writeFile(join(proj, 'lib', 'helper.py'), 'def twice(s):\n    return s + s\n')
  const blob = randomBytes(2000)
  await writeFile(join(proj, 'blob.bin'), blob)
  await writeFile(join(proj, '__pycache__', 'junk.pyc'), 'left out by default')
  const out = join(dir, 'out')
  // Through a shell pipe, as a user types it: the CLI's stdin is a pipe.
  const r = await promisify(execFile)(
    'sh',
    ['-c', `printf 'hey\\n' | "${process.execPath}" "${CLI}" run "${proj}" --out "${out}"`],
    {
      env: cliEnv,
    },
  ).catch((err: { code: number; stdout: string; stderr: string }) => err)
  t.equal(r.stdout, 'HEYHEY!\n', 'the local imports resolved, and the piped line reached the program')
  t.ok(
    (await readFile(join(out, 'seen.bin'))).equals(blob),
    'a binary project file went in and came back byte for byte',
  )
  t.same(await readdir(out), ['seen.bin'])
  const again = await promisify(execFile)(process.execPath, [CLI, 'run', proj, '--out', out, '--no-stdin'], {
    env: cliEnv,
  }).catch((err: { code: number; stderr: string }) => err)
  t.equal(
    (again as { code: number }).code,
    64,
    '--out into a directory that has files is refused: a job overwrites nothing of the user',
  )

  await writeFile(join(proj, 'big.dat'), randomBytes(1_100_000))
  const refused = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', proj], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('exit', (code) => resolve({ code, stderr }))
  })
  t.equal(refused.code, 64, 'a project too big to send is a usage error, before anything is sent')
  t.match(refused.stderr, /big\.dat \(1100000 bytes\).*\.airlockignore/)
  await writeFile(join(proj, '.airlockignore'), '# data stays home\n*.dat\n')
  const ignored = await promisify(execFile)(process.execPath, [CLI, 'run', proj, '--stdin', join(proj, 'util.py')], {
    env: cliEnv,
  })
  t.match(ignored.stdout, /DEF SHOUT/, '.airlockignore leaves the big file out, and the project runs')
})
