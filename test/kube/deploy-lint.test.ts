/**
 * The deploy manifests against linters nobody here wrote: checkov and kube-score
 * (pinned and cached by scripts/deploy-linters.sh), on every overlay rendered together
 * with a sandbox Job as the worker makes it, so that the sandbox namespace's policies
 * are judged with the pods they select. Every finding is fixed or listed, with its
 * reason, in deploy/kubernetes/lint-allow.json; an entry that matches nothing fails too.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { loadConfig } from '../../core/config.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { buildJob } from '../../worker/executors/kubernetes/job-manifests.js'
import { renderOverlay } from './cluster.js'

const run = promisify(execFile)
const ROOT = new URL('../..', import.meta.url).pathname
const OVERLAYS = ['gke', 'self-managed', 'single-node']

interface Finding {
  tool: 'checkov' | 'kube-score'
  check: string
  /** Kind.namespace.name, as checkov names resources. */
  object: string
  says: string
}
interface Allowed {
  tool: Finding['tool']
  check: string
  objects: string[]
  reason: string
}

async function linters(): Promise<{ checkov: string; kubeScore: string }> {
  const { stdout } = await run('bash', [join(ROOT, 'scripts/deploy-linters.sh')], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 20 * 60_000,
  })
  const paths = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  )
  return { checkov: paths.checkov!, kubeScore: paths['kube-score']! }
}

/** A sandbox Job exactly as the kubernetes executor creates it. */
function sandboxJob(): object {
  const config = loadConfig({})
  const spec = resolveJobSpec({ runtime: 'python', source: 'print(1)' }, config)
  return buildJob({
    jobId: 'job_lint',
    tenant: 'lint',
    spec,
    runtime: findRuntime('python')!,
    namespace: config.k8sNamespace,
    runtimeClassName: config.k8sRuntimeClass,
    image: `registry.example/airlock/python@sha256:${'0'.repeat(64)}`,
    workspaceMb: config.workspaceMb,
    startAllowanceMs: config.k8sStartAllowanceMs,
    ttlAfterFinishedSeconds: config.k8sTtlAfterFinishedSeconds,
  })
}

async function checkov(bin: string, file: string): Promise<Finding[]> {
  // Exit 1 when anything failed: the JSON on stdout is the answer either way.
  const { stdout } = await run(
    bin,
    ['-f', file, '--framework', 'kubernetes', '-o', 'json', '--quiet', '--skip-download'],
    { maxBuffer: 64 * 1024 * 1024 },
  ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
  const parsed = JSON.parse(stdout) as
    | {
        summary: { parsing_errors: number }
        results: { failed_checks: { check_id: string; resource: string; check_name: string }[] }
      }
    | []
  if (Array.isArray(parsed)) throw new Error(`checkov read no Kubernetes object from ${file}`)
  if (parsed.summary.parsing_errors > 0) throw new Error(`checkov could not parse ${file}`)
  return parsed.results.failed_checks.map((f) => ({
    tool: 'checkov',
    check: f.check_id,
    object: f.resource,
    says: f.check_name,
  }))
}

async function kubeScore(bin: string, file: string): Promise<Finding[]> {
  const { stdout } = await run(bin, ['score', file, '--output-format', 'json'], { maxBuffer: 64 * 1024 * 1024 }).catch(
    (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
  )
  type Scored = {
    object_meta: { name: string; namespace?: string }
    type_meta: { kind: string }
    checks: { check: { id: string }; grade: number; skipped: boolean; comments: { summary: string }[] | null }[]
  }
  const objects = JSON.parse(stdout) as Scored[]
  // Grades: 1 critical, 5 warning, 7 almost OK, 10 OK.
  return objects.flatMap((o) =>
    o.checks
      .filter((c) => !c.skipped && c.grade <= 5)
      .map(
        (c): Finding => ({
          tool: 'kube-score',
          check: c.check.id,
          object: `${o.type_meta.kind}.${o.object_meta.namespace ?? 'default'}.${o.object_meta.name}`,
          says: (c.comments ?? []).map((m) => m.summary).join('; '),
        }),
      ),
  )
}

const tools = await linters()
const allowList = JSON.parse(await readFile(join(ROOT, 'deploy/kubernetes/lint-allow.json'), 'utf8')) as {
  allowed: Allowed[]
}
const dir = await mkdtemp(join(tmpdir(), 'airlock-lint-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const job = JSON.stringify(sandboxJob(), null, 2)
const used = new Set<Allowed>()
const allows = (f: Finding) =>
  allowList.allowed.find((a) => a.tool === f.tool && a.check === f.check && a.objects.includes(f.object))

t.test('every allow-list entry gives a reason', async (t) => {
  for (const a of allowList.allowed) t.ok(a.reason.length > 40, `${a.tool} ${a.check}: ${a.reason.slice(0, 60)}`)
})

for (const overlay of OVERLAYS) {
  t.test(
    `overlay ${overlay} with a sandbox Job: checkov and kube-score find nothing outside the allow-list`,
    async (t) => {
      const file = join(dir, `${overlay}.yaml`)
      await writeFile(file, `${(await renderOverlay(overlay)).yaml}\n---\n${job}\n`)
      const findings = [...(await checkov(tools.checkov, file)), ...(await kubeScore(tools.kubeScore, file))]
      for (const f of findings) {
        const entry = allows(f)
        if (entry) used.add(entry)
        t.ok(entry, `${f.tool} ${f.check} on ${f.object}: ${f.says}${entry ? ' (allowed)' : ''}`)
      }
    },
  )
}

t.test('no allow-list entry is stale', async (t) => {
  for (const a of allowList.allowed)
    t.ok(used.has(a), `${a.tool} ${a.check} on ${a.objects.join(', ')} still matches a finding`)
})
