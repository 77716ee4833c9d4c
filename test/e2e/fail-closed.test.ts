import { spawn, spawnSync } from 'node:child_process'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { loadConfig } from '../../core/config.js'
import { AUTO_PLATFORMS } from '../../core/runsc-platforms.js'
import { createExecutor } from '../../worker/executors/create-executor.js'
import { removeCgroup } from '../../worker/executors/local/cgroup-host.js'
import { build } from '../helper.js'

t.test('a worker that cannot run runsc takes no jobs, and the API refuses new ones saying why', async (t) => {
  const h = await build(t, { env: { AIRLOCK_RUNSC_PATH: '/nonexistent/runsc' } })
  t.equal(h.worker?.isolation?.ok, false)
  t.match(h.worker?.isolation?.reason, /runsc cannot run/)
  const res = await h.request('POST', '/v1/jobs', { runtime: 'python', source: 'print(1)' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'AIRLOCK_ERR_ISOLATION_UNAVAILABLE')
  t.match(res.json().message, /runsc cannot run/, 'says why')
  t.notMatch(res.json().message, /\/nonexistent/, "but names no path of the worker's host")
  t.match(h.worker?.isolation?.reason, /\/nonexistent\/runsc/, "the worker's own report (its log, the admin queue) keeps the path")
  const ready = await h.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().ready, false)
})

t.test('a worker without its sandbox image refuses to run jobs', async (t) => {
  const h = await build(t, { env: { AIRLOCK_IMAGES_DIR: '/nonexistent/images' } })
  t.equal(h.worker?.isolation?.ok, false)
  t.match(h.worker?.isolation?.reason, /sandbox image "default" is not installed/)
})

t.test('sandboxes left by a worker that died are removed when a worker starts', async (t) => {
  const base = loadConfig({ AIRLOCK_STATE_DIR: `/run/airlock-test/reap-${process.pid}`, AIRLOCK_CGROUP_PARENT: `airlock-test/reap-${process.pid}` })
  // A pid that is certainly dead: a child that has exited.
  const deadPid = spawnSync('true').pid!
  const root = join(base.stateDir, 'workers', String(deadPid), 'runsc')
  const bundle = join(base.stateDir, 'workers', String(deadPid), 'bundles', 'airlock-orphan')
  await mkdir(root, { recursive: true })
  await mkdir(bundle, { recursive: true })
  await writeFile(
    join(bundle, 'config.json'),
    JSON.stringify({
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 10001, gid: 10001 }, args: ['/bin/sleep', '600'], env: ['PATH=/usr/bin:/bin'], cwd: '/' },
      root: { path: join(base.imagesDir, 'default', 'rootfs'), readonly: true },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
    }),
  )
  // Start a real sandbox as the dead worker would have, and leave it running.
  const runsc = (...args: string[]) => [`--root=${root}`, `--platform=${base.runscPlatform === 'auto' ? AUTO_PLATFORMS[0] : base.runscPlatform}`, '--network=none', ...args]
  const orphan = spawn(base.runscPath, runsc('run', '--detach', `--bundle=${bundle}`, 'airlock-orphan'), { stdio: 'ignore' })
  await new Promise((resolve) => orphan.once('exit', resolve))
  const listed = spawnSync(base.runscPath, runsc('list', '-quiet'), { encoding: 'utf8' }).stdout
  t.match(listed, /airlock-orphan/, 'the orphan sandbox is running before the worker starts')

  const executor = createExecutor(base, pino({ level: 'silent' }))
  t.teardown(async () => {
    await executor.close()
    await rm(base.stateDir, { recursive: true, force: true })
    await removeCgroup(base.cgroupParent).catch(() => undefined)
  })
  const reaped = await executor.reapOrphans()
  t.equal(reaped, 1)
  const owners = await readdir(join(base.stateDir, 'workers')).catch(() => [] as string[])
  t.notOk(owners.includes(String(deadPid)), "the dead worker's state is gone")
  const ps = spawnSync('pgrep', ['-f', 'airlock-orphan'], { encoding: 'utf8' }).stdout.trim()
  t.equal(ps, '', 'no sandbox process of the orphan remains')
})
