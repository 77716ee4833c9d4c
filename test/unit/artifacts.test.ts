import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import {
  ARTIFACT_ENTRY_OVERHEAD_BYTES,
  ARTIFACTS_DIR,
  artifactList,
  artifactStoredBytes,
  contentTypeOf,
  MAX_ARTIFACT_LIST_BYTES,
} from '../../core/artifacts.js'
import { jobReservationBytes } from '../../core/job-store.js'
import { contentDisposition } from '../../api/routes/v1/jobs/artifacts.js'
import { loadConfig } from '../../core/config.js'
import type { AirlockError } from '../../core/errors.js'
import { fileBytes, resolveJobSpec, type JobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { buildSecret, secretBytes } from '../../worker/executors/kubernetes/job-manifests.js'
import { collectArtifacts } from '../../worker/executors/local/artifacts-dir.js'
import { buildOciConfig } from '../../worker/executors/local/oci-bundle.js'
import { warmJobStream } from '../../worker/executors/sandbox-process.js'
import { collectProject, toJobFile } from '../../cli/commands/project.js'

const policy = loadConfig({})

t.test('artifacts are listed in path order with their sizes and types', async (t) => {
  const list = artifactList([
    { path: 'b/plot.png', content: Buffer.alloc(3) },
    { path: 'a.csv', content: Buffer.from('x') },
    { path: 'model.weights', content: Buffer.alloc(0) },
  ])
  t.same(list, [
    { path: 'a.csv', bytes: 1, contentType: 'text/csv' },
    { path: 'b/plot.png', bytes: 3, contentType: 'image/png' },
    { path: 'model.weights', bytes: 0, contentType: 'application/octet-stream' },
  ])
  t.equal(contentTypeOf('x.json'), 'application/json')
})

t.test('reading back what a job left takes regular files only, never following a link', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'artifacts-unit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'sub', 'deeper'), { recursive: true })
  await writeFile(join(dir, 'a.txt'), 'A')
  await writeFile(join(dir, 'sub', 'deeper', 'b.bin'), Buffer.from([0, 255]))
  await symlink('/etc/passwd', join(dir, 'passwd'))
  await symlink('/etc', join(dir, 'etc-dir'))
  execFileSync('mkfifo', [join(dir, 'pipe')])
  await writeFile(join(dir, Buffer.from([0x66, 0xff, 0x2e, 0x74]).toString('latin1')), 'x')
  await writeFile(Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xc3, 0x28])]), 'not UTF-8 named')
  await writeFile(join(dir, 'ctl-\x01\x02'), 'a name no file of a job may have')
  const { files, skipped } = await collectArtifacts(dir, 1024)
  t.same(files.map((f) => f.path).sort(), ['a.txt', 'f\u00ff.t', 'sub/deeper/b.bin'])
  t.ok(files.find((f) => f.path === 'sub/deeper/b.bin')!.content.equals(Buffer.from([0, 255])))
  t.same(
    skipped.filter((s) => !s.startsWith('bad-')).sort(),
    ['ctl-\x01\x02', 'etc-dir', 'passwd', 'pipe'],
    'links (to files and to directories), pipes and names with control characters are left',
  )
  t.equal(skipped.filter((s) => s.startsWith('bad-')).length, 1, 'a name that is not UTF-8 is left')
  // A sparse file takes no room in a tmpfs but reads as its whole size: its size is checked first.
  execFileSync('truncate', ['-s', '1T', join(dir, 'sparse')])
  const capped = await collectArtifacts(dir, 1024)
  t.ok(capped.skipped.includes('sparse'), 'a file larger than the bytes left is not read')
  t.notOk(capped.files.some((f) => f.path === 'sparse'))
  const tight = await collectArtifacts(dir, 2)
  t.equal(tight.files.reduce((n, f) => n + f.content.length, 0) <= 2, true, 'never more than the cap in all')
})

t.test('an artifact is served as an attachment under a name a browser cannot misread', async (t) => {
  t.equal(contentDisposition('plot.png'), `attachment; filename="plot.png"; filename*=UTF-8''plot.png`)
  t.equal(
    contentDisposition(`a"b\\c%d'(e)*é.txt`),
    `attachment; filename="a_b_c_d'(e)*_.txt"; filename*=UTF-8''a%22b%5Cc%25d%27%28e%29%2A%C3%A9.txt`,
  )
})

t.test('what artifacts hold in Redis is counted, names and all, and reserved while a job runs', async (t) => {
  const files = [{ path: 'a', content: Buffer.alloc(10) }]
  const list = JSON.stringify(artifactList(files))
  t.equal(artifactStoredBytes(files, list), 10 + ARTIFACT_ENTRY_OVERHEAD_BYTES + list.length)
  t.equal(
    jobReservationBytes(0, 0, 100) - jobReservationBytes(0, 0, 0),
    100 + MAX_ARTIFACT_LIST_BYTES,
    'the cap and the longest list, when artifacts are on',
  )
})

t.test('the sandbox mounts its artifacts directory writable only when artifacts are on', async (t) => {
  const spec = resolveJobSpec({ runtime: 'python', source: 'print(1)' }, policy)
  const base = {
    spec,
    runtime: findRuntime('python')!,
    rootfsPath: '/images/default/rootfs',
    jobFilesPath: '/bundle/files',
    cgroupsPath: '/airlock/x',
    workspaceMb: 32,
    network: 'none' as const,
  }
  const mounts = (c: Record<string, unknown>) =>
    c.mounts as { destination: string; source: string; options?: string[] }[]
  t.notOk(mounts(buildOciConfig(base)).some((m) => m.destination === ARTIFACTS_DIR))
  const on = mounts(buildOciConfig({ ...base, artifactsPath: '/bundle/artifacts' }))
  const out = on.find((m) => m.destination === ARTIFACTS_DIR)!
  t.same(
    { source: out.source, rw: out.options?.includes('rw'), nosuid: out.options?.includes('nosuid') },
    { source: '/bundle/artifacts', rw: true, nosuid: true },
  )
  t.ok(on.findIndex((m) => m.destination === '/workspace') < on.indexOf(out), 'after the workspace it sits in')
})

t.test('a file may be sent as base64 bytes; only strict base64 is taken, and its decoded size counts', async (t) => {
  const bytes = Buffer.from([0, 1, 2, 250, 251, 252, 253])
  const spec = resolveJobSpec(
    {
      runtime: 'bash',
      files: [
        { path: 'main.sh', content: 'true' },
        { path: 'd.bin', content: bytes.toString('base64'), encoding: 'base64' },
      ],
    },
    policy,
  )
  t.ok(fileBytes(spec.files[1]!).equals(bytes))
  t.ok(fileBytes(spec.files[0]!).equals(Buffer.from('true')), 'utf8 is the default')
  const code = (content: string) => {
    try {
      resolveJobSpec(
        {
          runtime: 'bash',
          files: [
            { path: 'main.sh', content: 'true' },
            { path: 'd', content, encoding: 'base64' },
          ],
        },
        policy,
      )
      return 'accepted'
    } catch (err) {
      return (err as AirlockError).code
    }
  }
  for (const bad of ['abc', 'ab=c', 'a b=', '@@@@', 'AAAA====', 'AA=A', '=AAA', 'A===', '\u00ffAAA', 'AAA\u0141'])
    t.equal(code(bad), 'AIRLOCK_ERR_INVALID_FILE', `${JSON.stringify(bad)} is not base64`)
  for (const good of ['', 'AA==', 'AAA=', 'AAAA']) t.equal(code(good), 'accepted', `${JSON.stringify(good)} is`)
  // Beside main.sh's 4 bytes, 1 MiB - 4 bytes (1,398,100 base64 characters) fill the 1 MiB total: the decoded size is
  // what counts.
  t.equal(
    code(Buffer.alloc(1024 * 1024 - 4).toString('base64')),
    'accepted',
    'a binary file that fills the 1 MiB total fits it',
  )
  t.equal(code(Buffer.alloc(1024 * 1024 - 3).toString('base64')), 'AIRLOCK_ERR_INVALID_FILE', 'one byte more does not')
})

t.test(
  "a binary file reaches a Kubernetes sandbox as its bytes (the Secret's data) and a warm one as its bytes",
  async (t) => {
    const spec: JobSpec = {
      ...resolveJobSpec(
        {
          runtime: 'bash',
          files: [
            { path: 'main.sh', content: 'true' },
            { path: 'd.bin', content: Buffer.from([255, 0]).toString('base64'), encoding: 'base64' },
          ],
        },
        policy,
      ),
    }
    const secret = buildSecret({
      jobId: 'job_0123456789abcdef0123456789abcdef',
      tenant: 't',
      namespace: 'ns',
      spec,
      runtime: findRuntime('bash')!,
      image: 'img',
      workspaceMb: 64,
    } as never)
    t.same(secret.data, { 'file-1': '/wA=' })
    t.equal(secret.stringData?.['file-0'], 'true')
    t.equal(
      secretBytes(spec),
      2 + 4 + Object.values(secret.stringData!).reduce((n, v) => n + Buffer.byteLength(v), 0) - 4,
      'counted as bytes',
    )
    const stream = warmJobStream(spec, findRuntime('bash')!)
    t.ok(
      stream.includes(Buffer.concat([Buffer.from('f 2 files/d.bin\n'), Buffer.from([255, 0])])),
      'the warm frame carries the two bytes',
    )
  },
)

t.test(
  'the CLI sends a project: UTF-8 files as text, others as base64; ignores what .airlockignore names',
  async (t) => {
    t.same(toJobFile('a.txt', Buffer.from('héllo')), { path: 'a.txt', content: 'héllo' })
    t.same(toJobFile('a.bin', Buffer.from([0xff])), { path: 'a.bin', content: '/w==', encoding: 'base64' })
    const dir = await mkdtemp(join(tmpdir(), 'project-unit-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    await mkdir(join(dir, 'lib'))
    await mkdir(join(dir, 'node_modules', 'x'), { recursive: true })
    await writeFile(join(dir, 'main.py'), 'import lib.a')
    await writeFile(join(dir, 'lib', 'a.py'), '')
    await writeFile(join(dir, 'notes.log'), 'x')
    await writeFile(join(dir, 'node_modules', 'x', 'i.js'), '')
    await writeFile(join(dir, '.airlockignore'), '*.log\n')
    await symlink('/etc/passwd', join(dir, 'link'))
    const project = await collectProject(dir, [], { candidates: ['main.py', 'main.js'] })
    t.equal(project.entrypoint, 'main.py')
    t.same(
      project.files.map((f) => f.path).sort(),
      ['lib/a.py', 'main.py'],
      'not the ignored, not node_modules, not a link',
    )
    const fromFile = await collectProject(join(dir, 'main.py'), [join(dir, 'lib')], {})
    t.same(fromFile.files.map((f) => f.path).sort(), ['lib/a.py', 'main.py'], 'a file and an extra directory')
    await t.rejects(collectProject(join(dir, 'main.py'), ['/etc/hostname'], {}), /not inside the project/)
    await writeFile(join(dir, 'main.js'), '')
    await t.rejects(
      collectProject(dir, [], { candidates: ['main.py', 'main.js'] }),
      /\(main\.py or main\.js\)\? pass --entrypoint/,
    )
    t.equal(
      (await collectProject(dir, [], { candidates: ['main.py', 'main.js'], entrypoint: 'main.js' })).entrypoint,
      'main.js',
    )
  },
)
