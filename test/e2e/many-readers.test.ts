import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'

// Many readers of one big job, against a real all-in-one process (bench/big-job-readers.ts):
// the memory it is measured by is the server's alone.

t.test(
  '100 readers of a job with 10 MiB on each stream: the process lives, its memory stays bounded, the output is stored once',
  async (t) => {
    const bench = new URL('../../dist/bench/big-job-readers.js', import.meta.url).pathname
    if (!existsSync(bench)) {
      t.fail(`${bench} is missing: build first (scripts/test.sh does)`)
      return
    }
    // The server's memory is measured, not the test runner's coverage of it.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^(NODE_OPTIONS|NODE_V8_COVERAGE|_TAPJS_|TAP)/.test(k)),
    )
    const { stdout } = await promisify(execFile)(
      process.execPath,
      // Under a 256 MB heap, as a memory-limited container runs it: what the readers keep
      // shows as the process's death, not as garbage the heap has not collected yet.
      [bench, '--mib', '10', '--readers', '100', '--stalled', '60', '--hold-seconds', '5', '--heap-mb', '256'],
      { env, maxBuffer: 1 << 20, timeout: 170_000 },
    )
    const report = JSON.parse(stdout.slice(stdout.indexOf('\n{') + 1)) as {
      peakRssMb: number
      idleRssMb: number
      beforeReadersRssMb: number
      readersComplete: number
      processAlive: boolean
      redisGrowthMb: number
    }
    t.comment(JSON.stringify(report))
    t.equal(report.processAlive, true, 'the all-in-one process is alive')
    t.equal(report.readersComplete, 100, 'every reader got the whole job or log')
    // README "Security model": the readers add under 384 MiB to the process, whose peak
    // stays under 1 GiB, with the default 32 MiB output budget (before: 3.9 GB, and a heap OOM at 20 MB).
    // Counted from just before the readers: from before the job, the job's own run and its
    // 20 MB ?wait answer counted as theirs, as much as the heap had not collected (one CI
    // run: 401 MiB from before the job, where the run before had 203 on the same readers).
    t.ok(
      report.peakRssMb - report.beforeReadersRssMb < 384,
      `the readers added ${report.peakRssMb - report.beforeReadersRssMb} MiB (under 384 MiB)`,
    )
    t.ok(report.peakRssMb < 1024, `peak RSS ${report.peakRssMb} MiB is under 1 GiB`)
    // 20 MiB of output kept once (plus Redis's own per-entry cost), not twice (51 MB before).
    t.ok(report.redisGrowthMb < 32, `the job added ${report.redisGrowthMb} MB to Redis: its output once`)
  },
)
