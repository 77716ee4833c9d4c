/**
 * Compiled runtimes and test cases (prints numbers; not a test), against a running
 * Airlock: for each compiled runtime, RUNS hello-world jobs one at a time (compile
 * time, the program's run time, submit to result); then one C++ job with CASES test
 * cases (one compile, each case's time, the whole job).
 *
 *   AIRLOCK_URL=http://127.0.0.1:8080 AIRLOCK_API_KEY=... node dist/bench/compiled.js [--runs 5] [--cases 20]
 */
import { parseArgs } from 'node:util'
import type { Job } from '../core/job.js'

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, cases: { type: 'string', default: '20' } },
})
const RUNS = Number(values.runs)
const CASES = Number(values.cases)
const URL_ = process.env.AIRLOCK_URL ?? 'http://127.0.0.1:8080'
const KEY = process.env.AIRLOCK_API_KEY ?? ''

const HELLO: Record<string, [string, string]> = {
  c: ['main.c', '#include <stdio.h>\nint main() { puts("hi"); return 0; }\n'],
  cpp: ['main.cpp', '#include <iostream>\nint main() { std::cout << "hi\\n"; }\n'],
  java: ['Main.java', 'public class Main { public static void main(String[] a) { System.out.println("hi"); } }\n'],
  go: ['main.go', 'package main\nimport "fmt"\nfunc main() { fmt.Println("hi") }\n'],
  rust: ['main.rs', 'fn main() { println!("hi"); }\n'],
}

async function run(body: unknown): Promise<{ job: Job; ms: number }> {
  const t0 = performance.now()
  const res = await fetch(`${URL_}/v1/jobs?wait=true`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const job = (await res.json()) as Job
  if (res.status !== 200) throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(job)}`)
  return { job, ms: performance.now() - t0 }
}

const p50 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)] ?? NaN
const f = (v: number) => v.toFixed(0).padStart(6)

console.log(`runtime   compile p50   run p50   submit->result p50   (n=${RUNS} each, one at a time)`)
for (const [runtime, [path, content]] of Object.entries(HELLO)) {
  const compile: number[] = []
  const runMs: number[] = []
  const total: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const { job, ms } = await run({ runtime, files: [{ path, content }], limits: { timeoutMs: 10_000 } })
    if (job.status !== 'succeeded')
      throw new Error(`${runtime}: ${job.status} ${job.reason} ${job.compile?.stderr ?? ''}`)
    compile.push(job.compile!.timeMs!)
    runMs.push(job.timings.runMs!)
    total.push(ms)
  }
  console.log(`${runtime.padEnd(8)} ${f(p50(compile))} ms  ${f(p50(runMs))} ms  ${f(p50(total))} ms`)
}

const tests = Array.from({ length: CASES }, (_, i) => ({ stdin: `${i} ${i}`, expectedOutput: String(2 * i) }))
const { job, ms } = await run({
  runtime: 'cpp',
  source: '#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << "\\n"; }\n',
  tests,
})
const cases = job.tests.map((c) => c.timeMs!)
console.log(
  `cpp with ${CASES} test cases: ${job.status}, compile ${job.compile!.timeMs} ms once, cases p50 ${p50(cases).toFixed(0)} ms (sum ${cases.reduce((a, b) => a + b, 0)} ms), submit->result ${ms.toFixed(0)} ms`,
)
