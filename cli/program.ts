import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError } from 'commander'
import { Airlock, AirlockError } from '../sdk/src/index.js'
import type { BenchFlags } from './bench/command.js'
import { SANDBOX_CONFIG_NAMES } from './bench/sandbox-configs.js'
import { cancelJob, getJob, jobLogs, listJobs, listRuntimes, type SubmitFlags, submitJobs } from './commands/jobs.js'
import { runCommand, RUNTIME_BY_EXTENSION, type RunFlags } from './commands/run.js'
import { addTenantCommands } from './commands/tenants.js'
import { EXIT, exitCodeForError } from './exit-codes.js'
import { RUNTIMES } from '../core/runtimes.js'
import { clientFor, resolveSettings, UsageError, type GlobalFlags } from './settings.js'
import { renderTable, runProbes, selectProbes } from './verify/verify.js'
import { jsonText, keepControlSequences, print } from './terminal.js'

const SERVER_JS = fileURLToPath(new URL('../bin/airlock-server.js', import.meta.url))

/**
 * The `airlock` command. Each action resolves to an exit code; errors of the API map
 * to distinct codes (cli/exit-codes.ts).
 */
export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('airlock')
    .description('Run untrusted code in gVisor sandboxes, and operate Airlock')
    .option('--url <url>', 'Airlock base URL (env AIRLOCK_URL, default http://127.0.0.1:8080)')
    .option(
      '--key <key>',
      'API key (env AIRLOCK_API_KEY; a flag is seen by every user of the machine in ps: prefer the env or --config)',
    )
    .option(
      '--config <file>',
      'JSON config file {"url","apiKey"} (env AIRLOCK_CONFIG, default ~/.config/airlock/config.json)',
    )
    .option(
      '--raw',
      "print a job's output and the server's text as they came, control sequences and all (on a terminal they are dropped: a job's output could act on it)",
    )
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', () => {
      if (program.opts<GlobalFlags>().raw) keepControlSequences()
    })

  const globals = (): GlobalFlags => program.opts<GlobalFlags>()
  const action =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A) => {
      setExit(await fn(...args))
    }

  program
    .command('run')
    .description(
      "run FILE (or a project's directory) in a sandbox, stream its output, exit with the job's exit code (timeout 124, oom 125, cancelled 130, error 70); piped stdin goes to the program",
    )
    .argument(
      '<file>',
      `program file; a project's directory (every file in it but those .airlockignore names; the program is ${[...new Set(RUNTIMES.map((r) => r.defaultEntrypoint))].join(', ')}, or --entrypoint); or - to read the program from stdin (with --runtime). The runtime comes from the entrypoint's extension (${Object.keys(RUNTIME_BY_EXTENSION).join(', ')}) unless --runtime`,
    )
    .argument('[args...]', 'arguments for the program (after --)')
    .option('-r, --runtime <runtime>', RUNTIMES.map((r) => r.name).join(', '))
    .option('-f, --file <path...>', "more files or directories of the project, inside FILE's directory")
    .option('--entrypoint <path>', "the program's file within the project, e.g. main.py")
    .option(
      '-o, --out <dir>',
      'write the files the job leaves in /workspace/out (its artifacts) to this new or empty directory',
    )
    .option(
      '--stdin <file>',
      "file to feed to the program's stdin ('-' for this stdin; piped stdin is used by default)",
    )
    .option('--no-stdin', 'give the program no stdin, even when this one is piped (in a `while read` loop)')
    .option('-t, --timeout <duration>', 'time limit, e.g. 10s, 500ms, 2m')
    .option('-m, --memory <mib>', 'memory limit, MiB')
    .option('--cpus <n>', 'CPU limit, e.g. 0.5 or 2')
    .option('--pids <n>', 'process and thread limit')
    .option('--output <bytes>', 'cap of stdout and of stderr, each, in bytes')
    .option('-e, --env <NAME=value...>', 'environment variables for the program')
    .option(
      '--tests <file>',
      'run once per test case (compiled once): a JSON file [{"stdin", "args", "expectedOutput"}]; each verdict is printed',
    )
    .option(
      '--idempotency-key <key>',
      'run at most once under this key: run again with it (after a lost answer), the command follows the job the first run made instead of making another',
    )
    .option('--json', 'print the finished job as JSON instead of streaming output')
    .action(
      action((file: string, args: string[], flags: RunFlags) => runCommand(clientFor(globals()), file, args, flags)),
    )

  const jobs = program.command('jobs').description("this tenant's jobs")
  jobs
    .command('list')
    .description('jobs, newest first')
    .option('--status <statuses>', 'comma-separated, e.g. running,queued')
    .option('--limit <n>', 'page size, 1-100', '20')
    .option('--cursor <cursor>', 'next page')
    .option('--json', 'print JSON')
    .action(
      action((flags: { status?: string; limit?: string; cursor?: string; json?: boolean }) =>
        listJobs(clientFor(globals()), flags),
      ),
    )
  jobs
    .command('submit')
    .description(
      'queue the jobs of a JSON array in one request (POST /v1/jobs/batch); prints each id or why it was refused; exit 65 if any was',
    )
    .argument('<file>', 'a JSON file [{"runtime", "source" | "files", ...}], or - for stdin')
    .option(
      '--idempotency-key <key>',
      'queue each job at most once under this key: submitted again with it, the jobs made before are answered, not made again',
    )
    .option('--json', 'print JSON')
    .action(action((file: string, flags: SubmitFlags) => submitJobs(clientFor(globals()), file, flags)))
  jobs
    .command('get')
    .description('a job, with its output')
    .argument('<id>')
    .option('--json', 'print JSON')
    .action(action((id: string, flags: { json?: boolean }) => getJob(clientFor(globals()), id, flags)))
  jobs
    .command('logs')
    .description("a job's output")
    .argument('<id>')
    .option('-f, --follow', 'stream until the job ends')
    .action(action((id: string, flags: { follow?: boolean }) => jobLogs(clientFor(globals()), id, flags)))
  jobs
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<id>')
    .option('--json', 'print JSON')
    .action(action((id: string, flags: { json?: boolean }) => cancelJob(clientFor(globals()), id, flags)))

  program
    .command('runtimes')
    .description('the runtimes jobs may use')
    .option('--json', 'print JSON')
    .action(action((flags: { json?: boolean }) => listRuntimes(clientFor(globals()), flags)))

  program
    .command('verify')
    .description('run the hostile-workload probes as an ordinary tenant; exit 0 only when every probe passes')
    .option('--only <name...>', 'only these probes or groups, e.g. network')
    .option('--json', 'print results as JSON')
    .action(
      action(async (flags: { only?: string[]; json?: boolean }) => {
        const client = clientFor(globals())
        const outcomes = await runProbes(client, selectProbes(flags.only), (o) => {
          if (!flags.json)
            print(process.stderr, `${o.pass ? 'pass' : 'FAIL'} ${o.name} (${(o.durationMs / 1000).toFixed(1)} s)\n`)
        })
        const passed = outcomes.every((o) => o.pass)
        if (flags.json) print(process.stdout, `${jsonText({ url: client.baseUrl, passed, probes: outcomes })}\n`)
        else print(process.stdout, `${renderTable(outcomes, process.stdout.columns ?? 160)}\n`)
        return passed ? EXIT.ok : 1
      }),
    )

  addTenantCommands(program, globals, action)

  program
    .command('bench')
    .description(
      'measure what gVisor costs: each workload under gVisor and under runc (interleaved), plus API ingest; writes bench.json and report.html',
    )
    .option('--quick', 'a short run (3 jobs per runtime, 2 s of ingest)')
    .option('--jobs <n>', 'jobs per workload and runtime (default 10)')
    .option('-c, --concurrency <n>', 'jobs at once', '2')
    .option('--workload <file...>', 'add workloads from a JSON file: {name, stresses, request}')
    .option('--only <names>', 'comma-separated workload names')
    .option('--out <dir>', 'where to write bench.json and report.html')
    .option(
      '--no-direct',
      'skip direct executor runs (the service-overhead baseline; needs root on the Airlock machine)',
    )
    .option('--ingest-seconds <s>', 'seconds of each API ingest run (0: none)')
    .option('--json', 'print the report JSON')
    .option(
      '--sandboxes <configs>',
      `instead: the workloads run directly under several sandbox configurations on this machine, side by side (${SANDBOX_CONFIG_NAMES.join(', ')}, or all; needs root, no server); writes sandboxes.json`,
    )
    .action(
      action(async (flags: BenchFlags) => {
        // Loaded only here: the bench pulls in the executors and a load generator.
        const { benchCommand, benchSandboxesCommand } = await import('./bench/command.js')
        if (flags.sandboxes !== undefined) return benchSandboxesCommand(flags)
        const { url, apiKey } = resolveSettings(globals())
        return benchCommand(new Airlock({ baseUrl: url, apiKey, requestTimeoutMs: 120_000 }), apiKey, flags)
      }),
    )

  program
    .command('serve')
    .description('run the Airlock server (API and worker; settings from the environment, see the README)')
    .option('--role <role>', 'all, api or worker', 'all')
    .action(
      action(async (flags: { role: string }) => {
        const child = spawn(process.execPath, [SERVER_JS, `--role=${flags.role}`], { stdio: 'inherit' })
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig))
        return new Promise<number>((resolve) =>
          child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1))),
        )
      }),
    )
  return program
}

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok
  const program = buildProgram((c) => {
    code = c
  })
  try {
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    if (err instanceof UsageError) {
      print(process.stderr, `airlock: ${err.message}\n`)
      return EXIT.usage
    }
    if (err instanceof AirlockError) {
      print(process.stderr, `airlock: ${err.message} (${err.code})\n`)
      return exitCodeForError(err)
    }
    print(process.stderr, `airlock: ${(err as Error).message}\n`)
    return EXIT.software
  }
}
