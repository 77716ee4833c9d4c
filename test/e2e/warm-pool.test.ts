import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Job } from '../../core/job.js'
import { build, metricValue as gauge, warmIdle as idle } from '../helper.js'

// Warm sandboxes on real gVisor, through the public API: a job handed to a sandbox
// booted before it arrived runs exactly as a cold one would, under its own limits, and
// sees nothing of the jobs before it or of the pool's other sandboxes.

/** A program whose output depends on everything a job hands it: argv, environment, stdin, files, limits. */
const TELL_ALL = {
  runtime: 'bash',
  files: [
    {
      path: 'main.sh',
      content:
        'printf "<%s>" "$@"; echo\nfor name in A B LANG PYTHONUNBUFFERED PATH HOME p go; do printf "%s=[%s]\\n" "$name" "${!name}"; done\ncat\nulimit -u\nid -u\npwd\nls -R\nenv | grep -c .\n',
    },
    { path: 'lib/data.txt', content: 'x' },
  ],
  entrypoint: 'main.sh',
  args: ['one arg', '', 'a\nb'],
  env: { A: 'multi\nline\n', B: '$(not run)', p: '1', go: 'no' },
  stdin: 'line one\nline two\n',
  limits: { pids: 23 },
}

t.test('a warm job runs as a cold one would, under its own limits', async (t) => {
  // A small default memory, so that a warm job can be driven past it.
  const h = await build(t, { env: { AIRLOCK_WARM_POOL: 'bash=2:4,python=1:2', AIRLOCK_DEFAULT_MEMORY_MB: '96' } })
  await idle(h, 'bash')
  const warm = await h.run(TELL_ALL)
  t.equal(warm.sandboxStart, 'warm', 'it took a sandbox of the pool')
  t.ok(
    warm.timings.bootMs !== null && warm.timings.bootMs > 0,
    `its sandbox had booted (in ${warm.timings.bootMs} ms) before the job arrived`,
  )
  t.comment(
    `warm: startup ${warm.timings.startupMs} ms, run ${warm.timings.runMs} ms; the sandbox booted in ${warm.timings.bootMs} ms`,
  )

  const cold = await build(t, { env: { AIRLOCK_WARM_POOL: 'none' } })
  const reference = await cold.run(TELL_ALL)
  t.equal(reference.sandboxStart, 'cold')
  t.equal(reference.status, 'succeeded')
  t.equal(warm.stdout, reference.stdout, 'byte for byte the output of the same job started cold')
  t.match(
    warm.stdout,
    /^<one arg><><a\nb>\nA=\[multi\nline\n\]\nB=\[\$\(not run\)\]\n/,
    '...which is the job’s argv and environment',
  )
  t.match(
    warm.stdout,
    /line one\nline two\n23\n10001\n\/workspace\n/,
    '...its stdin, its process limit, the sandbox user and the workspace',
  )
  t.same({ ...warm.isolation }, { ...reference.isolation }, 'the same isolation recorded')

  await idle(h, 'python')
  const oom = await h.run({
    runtime: 'python',
    source: 'b = bytearray(300 * 1024 * 1024)\nprint("allocated")',
    limits: { memoryMb: 96 },
  })
  t.equal(oom.sandboxStart, 'warm')
  t.equal(oom.status, 'oom', 'the memory limit holds in a warm sandbox')
  const other = await h.run({ runtime: 'bash', source: 'true', limits: { memoryMb: 128 } })
  t.equal(
    other.sandboxStart,
    'cold',
    'a job with other memory than the pool’s sandboxes starts cold: the program would see the boot’s',
  )
  t.notMatch(oom.stdout, /allocated/)

  await idle(h, 'python')
  const forks = await h.run({
    runtime: 'python',
    source:
      'import os, time\nn = 0\ntry:\n    for i in range(30):\n        if os.fork() == 0:\n            time.sleep(3)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print("refused", e.errno)\nprint("forked", n)',
    limits: { pids: 8 },
  })
  t.equal(forks.sandboxStart, 'warm')
  t.match(
    forks.stdout,
    /^refused 11\nforked [0-7]\n$/,
    `the job's pids limit (8), set at the claim, refuses the rest: ${JSON.stringify(forks.stdout)}`,
  )

  await idle(h, 'bash')
  const slow = await h.run({ runtime: 'bash', source: 'echo started; sleep 30', limits: { timeoutMs: 1500 } })
  t.equal(slow.sandboxStart, 'warm')
  t.equal(slow.status, 'timeout')
  t.ok(
    slow.timings.runMs !== null && slow.timings.runMs >= 1500 && slow.timings.runMs < 5000,
    `the time limit counts from the program's start (ran ${slow.timings.runMs} ms)`,
  )
  t.equal(slow.stdout, 'started\n')

  await idle(h, 'bash')
  const flood = await h.run({
    runtime: 'bash',
    source: 'head -c 100000 /dev/zero | tr "\\0" x',
    limits: { outputBytes: 1000 },
  })
  t.equal(flood.sandboxStart, 'warm')
  t.equal(flood.stdout.length, 1000, 'the output cap is the job’s')
  t.ok(flood.truncated)

  t.equal(
    await gauge(h.metrics, 'airlock_warm_claims_total', { runtime: 'bash', result: 'hit' }),
    3,
    'hits are counted: each bash job above took a warm sandbox',
  )
})

t.test('a warm job sees nothing of the job before it, nor of the pool’s other sandboxes', async (t) => {
  const h = await build(t, { env: { AIRLOCK_WARM_POOL: 'bash=3:4' } })
  const marker = `airlock-marker-${Math.random().toString(36).slice(2)}`
  await idle(h, 'bash', 3)
  const first = await h.run({
    runtime: 'bash',
    source: `echo secret > /workspace/${marker}; echo secret > /tmp/${marker}; (exec -a ${marker} sleep 60) & echo left`,
  })
  t.equal(first.sandboxStart, 'warm')
  t.equal(first.stdout, 'left\n')
  const second = await h.run({
    runtime: 'bash',
    source: [
      `grep -rl secret /workspace /tmp 2>/dev/null | grep -c ${marker}`,
      // [a]: the pattern does not match the grep's own command line, which /proc shows too.
      `cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " " | grep -c "[a]${marker.slice(1)}"`,
      // This job's own processes only: its shell, and the ls and grep of this line.
      'ls /proc | grep -c "^[0-9]"',
      // No other sandbox's launcher waits in here: pid 1 is this job's program.
      'tr "\\0" " " </proc/1/cmdline',
    ].join('; echo; '),
  })
  t.equal(second.sandboxStart, 'warm')
  const [files, procs, count, init] = second.stdout.split('\n').filter((l) => l.trim() !== '')
  t.equal(files?.trim(), '0', 'no file of the job before')
  t.equal(procs?.trim(), '0', 'no process of the job before')
  t.ok(Number(count) <= 4, `only its own processes are visible (${count})`)
  t.match(init, /^bash main\.sh/, 'pid 1 is its own program, not a waiting launcher')
})

t.test('a warm job can be cancelled, and one that finds the pool empty starts cold', async (t) => {
  const h = await build(t, { env: { AIRLOCK_WARM_POOL: 'bash=1:1' } })
  await idle(h, 'bash')
  const res = await h.request('POST', '/v1/jobs', { runtime: 'bash', source: 'echo up; sleep 60' })
  const id = res.json().id as string
  await h.poll(id, (j: Job) => j.status === 'running')
  await sleep(300)
  const second = await h.run({ runtime: 'bash', source: 'echo second' })
  t.equal(second.sandboxStart, 'cold', 'the only warm sandbox is taken: a miss, started cold')
  t.equal(second.stdout, 'second\n')
  t.equal((await h.request('DELETE', `/v1/jobs/${id}`)).statusCode < 300, true)
  const cancelled = await h.poll(id, (j: Job) => j.status !== 'running')
  t.equal(cancelled.status, 'cancelled')
  t.equal(cancelled.sandboxStart, 'warm')
  t.ok(
    (await gauge(h.metrics, 'airlock_warm_claims_total', { runtime: 'bash', result: 'miss' })) >= 1,
    'the miss is counted',
  )
})
