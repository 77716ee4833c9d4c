import { readFile } from 'node:fs/promises'
import type { JobRequest } from '../../sdk/src/index.js'
import { UsageError } from '../settings.js'

/** One kind of job to measure: what it stresses, and the job that does it. */
export interface Workload {
  name: string
  /** What it measures, for the report. */
  stresses: string
  request: Omit<JobRequest, 'isolation'>
  /** The program prints the seconds its own measured part took as its last line (no interpreter start in it). */
  timesItself?: true
}

const limits = { timeoutMs: 60_000, memoryMb: 512 }

/** The built-in set. Sizes keep a gVisor run on the ptrace platform within seconds. */
export const BUILTIN_WORKLOADS: readonly Workload[] = [
  {
    name: 'trivial',
    stresses:
      'a trivial job as a caller sends it (`true`, default limits: the warm pool takes it when it has a sandbox)',
    request: { runtime: 'bash', source: 'true' },
  },
  {
    name: 'startup-bash',
    stresses: 'sandbox start-up only (`true`)',
    request: { runtime: 'bash', source: 'true', limits },
  },
  {
    name: 'startup-python',
    stresses: 'start-up of an interpreter (`python -c pass`)',
    request: { runtime: 'python', source: 'pass', limits },
  },
  {
    name: 'cpu',
    stresses: 'CPU-bound work, no system calls',
    request: { runtime: 'python', source: 's = 0\nfor i in range(3_000_000):\n    s += i * i\nprint(s)', limits },
  },
  {
    name: 'syscalls',
    stresses: 'many small file operations (open, write, stat, unlink)',
    request: {
      runtime: 'python',
      source:
        'import os\nfor i in range(400):\n    p = f"/tmp/f{i}"\n    with open(p, "w") as f:\n        f.write("x")\n    os.stat(p)\n    os.unlink(p)\nprint("ok")',
      limits,
    },
  },
  {
    name: 'stat',
    stresses: 'one system call, many times: 20,000 stat calls in a loop (timed inside the program too)',
    request: {
      runtime: 'python',
      source:
        'import os, time\nt = time.perf_counter()\nfor _ in range(20_000):\n    os.stat("/")\nprint(f"{time.perf_counter() - t:.4f}")',
      limits,
    },
    timesItself: true,
  },
  {
    name: 'create-files',
    stresses: 'creating 2,000 files in the workspace',
    request: {
      runtime: 'python',
      source:
        'import time\nt = time.perf_counter()\nfor i in range(2000):\n    open(f"f{i}", "w").close()\nprint(f"{time.perf_counter() - t:.4f}")',
      limits,
    },
    timesItself: true,
  },
  {
    name: 'file-io',
    stresses: 'writing and reading 32 MiB in the workspace',
    request: {
      runtime: 'python',
      source:
        'import os\nb = os.urandom(1 << 20)\nwith open("data.bin", "wb") as f:\n    for _ in range(32):\n        f.write(b)\nn = 0\nwith open("data.bin", "rb") as f:\n    while chunk := f.read(1 << 20):\n        n += len(chunk)\nprint(n)',
      limits,
    },
  },
  {
    name: 'memory',
    stresses: 'allocating and touching 192 MiB',
    request: {
      runtime: 'python',
      source: 'b = bytearray(192 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint(sum(b[::4096]))',
      limits,
    },
  },
  {
    name: 'ml',
    stresses: 'numpy matrix products and a small scikit-learn fit',
    request: {
      runtime: 'ml-python',
      source:
        'import numpy as np\nfrom sklearn.linear_model import LogisticRegression\nrng = np.random.default_rng(0)\na = rng.random((400, 400))\nfor _ in range(5):\n    a = a @ a / 400\nX = rng.random((2000, 20)); y = (X[:, 0] > 0.5).astype(int)\nprint(LogisticRegression(max_iter=200).fit(X, y).score(X, y))',
      limits: { timeoutMs: 120_000, memoryMb: 1024 },
    },
  },
]

/** A user's workload file: one workload or an array, `{name, stresses?, request}`. */
export async function loadWorkloadFile(path: string): Promise<Workload[]> {
  let data: unknown
  try {
    data = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new UsageError(`cannot read workload file ${path}: ${(err as Error).message}`)
  }
  const list = Array.isArray(data) ? data : [data]
  return list.map((w, i) => {
    const { name, stresses, request } = (w ?? {}) as Partial<Workload>
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,40}$/.test(name))
      throw new UsageError(`${path}: workload ${i} needs a name of lowercase letters, digits, - and _`)
    if (typeof request !== 'object' || request === null || typeof (request as JobRequest).runtime !== 'string')
      throw new UsageError(`${path}: workload ${name} needs a request with a runtime (a POST /v1/jobs body)`)
    return { name, stresses: typeof stresses === 'string' ? stresses : 'user workload', request }
  })
}
