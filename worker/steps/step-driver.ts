import type { JobSpec } from '../../core/job-spec.js'
import type { RuntimeDefinition } from '../../core/runtimes.js'
import { appendFileWords } from '../executors/sandbox-process.js'
import { MAX_TEXT_BYTES_PER_BYTE } from '../executors/output-capture.js'
import { COMPILE_OUTPUT_BYTES, runOutputBytes, stepsWallMs, type StepKind } from '../../core/test-cases.js'

/**
 * A compiled job, or a job with test cases, runs as steps in one sandbox: the compile
 * (once), then the program once, or once per case. A small shell program, the step
 * driver, runs them inside the sandbox, each with its own time limit and output cap,
 * and reports each on stdout and stderr between frames only it can write. This is
 * the same under both executors: to them the driver is the job's program. Pure.
 *
 * Why a driver in the sandbox and not the host: one sandbox holds the compiled program
 * for every case (compile once), and the executors need nothing new.
 *
 * Why the frames can be trusted: the driver draws a nonce before anything of the
 * job's runs and keeps it in its own memory (a child cannot read its parent's under
 * gVisor's ptrace scope) and in the streams, which the program cannot read; every
 * frame carries it. A program can stop the driver (they share a uid); then the report
 * is incomplete, which the worker sees. Expected outputs never enter the sandbox.
 */

/** First line on stdout and on stderr: the nonce. */
export const STEP_BEGIN = 'airlock-step-begin'
/**
 * Every later frame, ending its line: `start KIND INDEX`, `end KIND INDEX STATUS
 * NANOSECONDS` (stdout; stderr's end has no status), and `done` once every step ran.
 * A frame may begin mid-line (the program's last line may have no newline): the nonce,
 * not a line start, is what marks it, so no byte of the program's is taken for it.
 */
export const STEP_FRAME = 'airlock-step'

export type { StepKind } from '../../core/test-cases.js'

/** Processes the driver keeps beside the program (itself, two readers with head and cat each, timeout). */
export const DRIVER_HELPER_PROCESSES = 6
/** The longest frame, bytes, with room to spare. */
export const FRAME_BYTES = 128

/** Where the driver keeps the steps' inputs inside the sandbox (a directory of its own under /tmp). */
const DATA = {
  limits: 'limits',
  compile: 'compile',
  run: 'argv',
  steps: 's',
} as const

/** Whether a job runs as steps: its runtime compiles, or it has test cases. */
export function runsAsSteps(spec: JobSpec, runtime: RuntimeDefinition): boolean {
  return runtime.compile !== undefined || spec.tests !== undefined
}

/** The runs after the compile: one per case, or the job's own. */
export function runSteps(spec: JobSpec): { kind: 'run' | 'test'; stdin: string; args: string[] }[] {
  return spec.tests
    ? spec.tests.map((t) => ({ kind: 'test' as const, stdin: t.stdin, args: t.args }))
    : [{ kind: 'run' as const, stdin: spec.stdin, args: spec.args }]
}

/** Each step's cap of stdout and of stderr, each, bytes. */
export function stepOutputBytes(spec: JobSpec, kind: StepKind): number {
  return kind === 'compile'
    ? Math.min(spec.limits.outputBytes, COMPILE_OUTPUT_BYTES)
    : runOutputBytes(spec.limits.outputBytes, runSteps(spec).length)
}

/**
 * Bytes one stream of the driver may carry: its frames and every step's output at its cap (plus the byte that shows a
 * cut).
 */
export function driverStreamBytes(spec: JobSpec, runtime: RuntimeDefinition): number {
  const runs = runSteps(spec)
  const compile = runtime.compile ? stepOutputBytes(spec, 'compile') + 1 + 2 * FRAME_BYTES : 0
  return 2 * FRAME_BYTES + compile + runs.length * (stepOutputBytes(spec, runs[0]!.kind) + 1 + 2 * FRAME_BYTES)
}

/**
 * The spec the executor runs for a job of steps: the driver as its program, the
 * steps' inputs on its stdin, and limits that hold every step (time: all of them one
 * after another; output: every step's at its cap, and the frames; processes: the
 * driver's helpers too). Memory and CPUs are the job's: the sandbox's.
 */
export function driverSpec(spec: JobSpec, runtime: RuntimeDefinition): JobSpec {
  const runs = runSteps(spec)
  const compileTimeoutMs = runtime.compile ? (spec.limits.compileTimeoutMs ?? spec.limits.timeoutMs) : undefined
  return {
    ...spec,
    args: [],
    stdin: driverInput(spec, runtime),
    limits: {
      ...spec.limits,
      timeoutMs: stepsWallMs({ timeoutMs: spec.limits.timeoutMs, compileTimeoutMs }, runs.length),
      outputBytes: driverStreamBytes(spec, runtime),
      pids: spec.limits.pids + DRIVER_HELPER_PROCESSES,
    },
    program: ['/bin/sh', '-c', DRIVER_SCRIPT, 'airlock-steps'],
    // Each byte of it may be kept as three (U+FFFD for one that is not UTF-8); what is stored
    // of each step is cut to the step's own cap as text by the step parser.
    outputTextBytes: MAX_TEXT_BYTES_PER_BYTE * driverStreamBytes(spec, runtime),
    // The job's environment is its steps' alone (withJobEnv).
    env: {},
  }
}

/** Seconds for `timeout`, from milliseconds. */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3)
}

/**
 * A step's argv with the job's environment set for it alone (`env NAME=value ... argv`):
 * the driver and its helpers (`timeout`, `head`, `od`, `date`) run in the sandbox's own
 * environment, so a job's LD_PRELOAD could not switch off its time limits or read its
 * nonce (review 18). Names are POSIX names (job-spec.ts), so none is taken for an option.
 */
function withJobEnv(spec: JobSpec, argv: readonly string[]): string[] {
  const env = Object.entries(spec.env)
  if (argv.length === 0 || env.length === 0) return [...argv]
  return ['env', ...env.map(([name, value]) => `${name}=${value}`), ...argv]
}

/** One word per file, named so that name order is word order. */
function words(dir: string, list: readonly string[]): { path: string; content: string }[] {
  return list.map((w, i) => ({ path: `${dir}/${String(i).padStart(6, '0')}`, content: w }))
}

/**
 * The driver's stdin: a frame per directory (`d 0 PATH`) and per file (`f BYTES PATH`,
 * then exactly BYTES bytes), then `e 0 -`, as a warm pod's job stream. The files: the
 * limits line, the compile argv and the run argv (one word per file), and per run
 * step its stdin and its args. Pure.
 */
export function driverInput(spec: JobSpec, runtime: RuntimeDefinition): string {
  const runs = runSteps(spec)
  const mode = spec.tests ? 'tests' : 'run'
  const compileMs = spec.limits.compileTimeoutMs ?? spec.limits.timeoutMs
  const files = [
    {
      path: DATA.limits,
      content: `${runs.length} ${seconds(spec.limits.timeoutMs)} ${seconds(compileMs)} ${stepOutputBytes(spec, runs[0]!.kind) + 1} ${stepOutputBytes(spec, 'compile') + 1} ${mode}\n`,
    },
    ...words(DATA.compile, withJobEnv(spec, runtime.compile?.(spec.entrypoint) ?? [])),
    ...words(DATA.run, withJobEnv(spec, runtime.command(spec.entrypoint, []))),
    ...runs.flatMap((r, i) => [
      { path: `${DATA.steps}/${i + 1}/in`, content: r.stdin },
      ...words(`${DATA.steps}/${i + 1}/args`, r.args),
    ]),
  ]
  const dirs = new Set<string>([DATA.compile, DATA.run, DATA.steps])
  runs.forEach((_, i) => {
    dirs.add(`${DATA.steps}/${i + 1}`)
    dirs.add(`${DATA.steps}/${i + 1}/args`)
  })
  const parts = [...dirs].map((d) => `d 0 ${d}\n`)
  for (const f of files) parts.push(`f ${Buffer.byteLength(f.content)} ${f.path}\n`, f.content)
  parts.push('e 0 -\n')
  return parts.join('')
}

/**
 * The driver. Reads its data (driverInput) into a directory of its own, draws the
 * nonce, then runs each step through `step KIND INDEX SECONDS CAP STDIN ARGV...`: the
 * program writes into two FIFOs, whose readers pass the first bytes on at once
 * (unbuffered) and drain the rest, so the live log shows each step as it runs; it
 * runs under `timeout -s KILL`, and every process it started is killed when it ends,
 * before any frame is written. The compile's failure ends the job; a run's status
 * becomes the driver's exit status.
 */
export const DRIVER_SCRIPT = [
  'd=$(mktemp -d) || exit 125',
  'while IFS= read -r h; do',
  '  k=${h%% *}; r=${h#* }; c=${r%% *}; w=${r#* }',
  '  case $k in',
  '    d) mkdir -p "$d/$w" || exit 125 ;;',
  '    f) head -c "$c" >"$d/$w" || exit 125 ;;',
  '    e) break ;;',
  '    *) exit 125 ;;',
  '  esac',
  'done',
  `[ "$k" = e ] && read -r runs tl ctl cap ccap mode <"$d/${DATA.limits}" || exit 125`,
  // A nonce per stream: one read off stderr (which a program may be able to open through
  // /proc) says nothing of stdout's, whose frames carry each step's status.
  'an_=$(od -An -N32 -tx1 /dev/urandom) && [ -n "$an_" ] || exit 125',
  'an=; bn=; aw_=0; for aw in $an_; do if [ $aw_ -lt 16 ]; then an=$an$aw; else bn=$bn$aw; fi; aw_=$((aw_ + 1)); done; an_=',
  '[ ${#an} -eq 32 ] && [ ${#bn} -eq 32 ] || exit 125',
  `echo ${STEP_BEGIN} "$an"; echo ${STEP_BEGIN} "$bn" >&2`,
  'mkfifo "$d/o" "$d/e" || exit 125',
  'step() {',
  '  sk=$1 si=$2 st=$3 sc=$4 sin=$5; shift 5',
  // Every process there is before the step: after it, any other but its readers goes.
  `  snap=' '; for q in /proc/[0-9]*; do snap="$snap\${q#/proc/} "; done`,
  `  printf '%s %s start %s %s\\n' ${STEP_FRAME} "$an" "$sk" "$si"`,
  `  printf '%s %s start %s %s\\n' ${STEP_FRAME} "$bn" "$sk" "$si" >&2`,
  '  { stdbuf -o0 head -c "$sc"; cat >/dev/null; } <"$d/o" &',
  '  ro=$!',
  '  { stdbuf -o0 head -c "$sc"; cat >/dev/null; } <"$d/e" >&2 &',
  '  re=$!',
  '  t0=$(date +%s%N)',
  '  timeout -s KILL "$st" "$@" <"$sin" >"$d/o" 2>"$d/e" &',
  '  p=$!',
  // dash tells its own stderr (here: the step's) of a child a signal killed; the frame says it.
  '  wait $p 2>/dev/null',
  '  x=$?',
  '  t1=$(date +%s%N)',
  // What the step left running goes before its readers are waited for and any frame is
  // written: its process group (timeout's), then, sweep after sweep until none is left,
  // every process born during the step but the readers and theirs, whatever group or
  // session it moved to. A program then cannot outlive its case, hold its output open,
  // or be there to read or write anything of the next case's. Zombies are skipped: a
  // dead process cannot be killed again.
  '  kill -9 -$p 2>/dev/null',
  '  while :; do',
  '    k9=',
  '    for q in /proc/[0-9]*; do',
  `      n=\${q#/proc/}`,
  '      case "$snap" in *" $n "*) continue ;; esac',
  '      [ "$n" = "$ro" ] || [ "$n" = "$re" ] && continue',
  '      pp= zs=',
  '      while read -r fk fv fr; do case $fk in State:) zs=$fv ;; PPid:) pp=$fv; break ;; esac; done <"$q/status" 2>/dev/null',
  '      [ "$zs" = Z ] || [ -z "$pp" ] || [ "$pp" = "$ro" ] || [ "$pp" = "$re" ] && continue',
  '      kill -9 "$n" 2>/dev/null && k9=1',
  '    done',
  '    [ -z "$k9" ] && break',
  '  done',
  '  wait $ro',
  '  wait $re',
  `  printf '%s %s end %s %s %s %s\\n' ${STEP_FRAME} "$an" "$sk" "$si" "$x" $((t1 - t0))`,
  `  printf '%s %s end %s %s\\n' ${STEP_FRAME} "$bn" "$sk" "$si" >&2`,
  '  return $x',
  '}',
  'set --',
  appendFileWords(`"$d/${DATA.compile}"`),
  'if [ $# -gt 0 ]; then',
  '  step compile 0 "$ctl" "$ccap" /dev/null "$@"',
  '  x=$?',
  `  if [ $x -ne 0 ]; then printf '%s %s done\\n' ${STEP_FRAME} "$an"; exit $x; fi`,
  'fi',
  'kind=run; [ "$mode" = tests ] && kind=test',
  'i=1; last=0',
  'while [ $i -le "$runs" ]; do',
  '  set --',
  `  ${appendFileWords(`"$d/${DATA.run}"`).replaceAll('\n', '\n  ')}`,
  `  ${appendFileWords(`"$d/${DATA.steps}/$i/args"`).replaceAll('\n', '\n  ')}`,
  `  step $kind $i "$tl" "$cap" "$d/${DATA.steps}/$i/in" "$@"`,
  '  last=$?',
  '  i=$((i + 1))',
  'done',
  `printf '%s %s done\\n' ${STEP_FRAME} "$an"`,
  '[ "$mode" = tests ] && exit 0',
  'exit $last',
].join('\n')
