import { createHash } from 'node:crypto'
import type { V1Job, V1Secret } from '@kubernetes/client-node'
import { fileBytes, type JobSpec, type Limits } from '../../../core/job-spec.js'
import type { RuntimeDefinition } from '../../../core/runtimes.js'
import {
  envFiles,
  JOB_FILES_MOUNT,
  SANDBOX_FIXED_ENV,
  SANDBOX_GID,
  SANDBOX_UID,
  sandboxArgv,
  sandboxEnv,
  warmStreamLauncherArgv,
  WORKSPACE,
} from '../sandbox-process.js'
import { SANDBOX_SECCOMP_PROFILE_NAME } from '../sandbox-seccomp.js'

export const MANAGED_BY = 'airlock'
export const LABEL_JOB = 'airlock.dev/job'
export const LABEL_TENANT = 'airlock.dev/tenant'
/** Every sandbox pod carries it; the namespace's deny-all NetworkPolicy must select it. */
export const LABEL_SANDBOX = 'airlock.dev/sandbox'
export const ANNOTATION_TENANT = 'airlock.dev/tenant'
/** A warm Job's state: idle (waiting for a job), claimed. */
export const LABEL_WARM = 'airlock.dev/warm'
/** On a claimed warm Job: the name a cold Job of that job would have had (kubeJobName), so a retry finds it. */
export const LABEL_CLAIMED_BY = 'airlock.dev/claimed-by'
/** On a claimed warm Job: when it was claimed (epoch ms). */
export const ANNOTATION_CLAIMED_AT = 'airlock.dev/claimed-at'
/** On a claimed warm Job: when the whole job was written to its stdin (epoch ms): its program's start. */
export const ANNOTATION_HANDED_AT = 'airlock.dev/handed-at'
export const CONTAINER_NAME = 'job'
/** A Secret holds at most 1 MiB of data. */
export const MAX_SECRET_BYTES = 1024 * 1024

export interface ManifestInput {
  jobId: string
  tenant: string
  spec: JobSpec
  runtime: RuntimeDefinition
  namespace: string
  runtimeClassName: string
  /** Image reference pinned by digest. */
  image: string
  workspaceMb: number
  /** Added to the job's timeout in activeDeadlineSeconds: scheduling and image pull. */
  startAllowanceMs: number
  ttlAfterFinishedSeconds: number
  /** The launcher runs nothing until the worker's go line comes through an attach (ArgvOptions.waitForGo). */
  waitForGo?: boolean
}

/**
 * Our job id -> the Kubernetes Job's name. Deterministic, so a second attempt at the
 * same job finds the first one's Job instead of creating another.
 */
export function kubeJobName(jobId: string): string {
  return `airlock-${jobId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63).replace(/-+$/, '')
}

/** A label value for a tenant: the name itself when it is a valid label value, else a stable hash. */
export function tenantLabel(tenant: string): string {
  if (/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/.test(tenant)) return tenant
  return `h-${createHash('sha256').update(tenant).digest('hex').slice(0, 40)}`
}

export function jobLabels(jobId: string, tenant: string): Record<string, string> {
  return {
    'app.kubernetes.io/managed-by': MANAGED_BY,
    [LABEL_JOB]: kubeJobName(jobId),
    [LABEL_TENANT]: tenantLabel(tenant),
    [LABEL_SANDBOX]: 'true',
  }
}

/** Secret keys cannot hold '/', so files get numbered keys and their paths come back through volume items. */
function secretKeyOfFile(i: number): string {
  return `file-${i}`
}

function secretKeyOfEnv(fileName: string): string {
  return `env-${fileName}`
}

/** Where the program's environment is, one file per variable, under JOB_FILES_MOUNT (sandboxArgv's envDir). */
const ENV_DIR = 'env'

/**
 * Job spec -> the Secret carrying the job's files, stdin and environment (the code
 * reaches the pod without any network, and the variables, often credentials, are not
 * in the Job for anyone who may read Jobs). Pure. Its owner reference to the Job is
 * added once the Job exists, so it is garbage-collected with it.
 */
export function buildSecret(input: ManifestInput): V1Secret {
  const stringData: Record<string, string> = { stdin: input.spec.stdin }
  // A binary file (sent in base64, checked at the edge) goes in as its bytes: `data` is base64.
  const data: Record<string, string> = {}
  input.spec.files.forEach((f, i) => {
    if (f.encoding === 'base64') data[secretKeyOfFile(i)] = f.content
    else stringData[secretKeyOfFile(i)] = f.content
  })
  for (const file of envFiles(sandboxEnv(input.spec))) stringData[secretKeyOfEnv(file.name)] = file.content
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: kubeJobName(input.jobId),
      namespace: input.namespace,
      labels: jobLabels(input.jobId, input.tenant),
      annotations: { [ANNOTATION_TENANT]: input.tenant },
    },
    type: 'Opaque',
    immutable: true,
    ...(Object.keys(data).length > 0 ? { data } : {}),
    stringData,
  }
}

/** Bytes the Secret will hold; above MAX_SECRET_BYTES the API server refuses it. */
export function secretBytes(spec: JobSpec): number {
  const contents = [spec.stdin, ...envFiles(sandboxEnv(spec)).map((f) => f.content)]
  return (
    contents.reduce((n, c) => n + Buffer.byteLength(c), 0) + spec.files.reduce((n, f) => n + fileBytes(f).length, 0)
  )
}

/**
 * A string the kubelet passes on as it is: it expands `$(NAME)` in a container's
 * command and env values and reads `$$` as `$`, so every `$` is doubled. Without it a
 * job's argument `$(HOME)` would reach the program as /workspace.
 */
export function kubeLiteral(s: string): string {
  return s.replaceAll('$', '$$$$')
}

const LOG_ALLOWANCE_MB = 64

function quantityMi(mb: number): string {
  return `${mb}Mi`
}

/**
 * Job spec -> the Kubernetes Job that runs it under the gVisor RuntimeClass. Pure, so
 * every restriction is asserted without a cluster; the real API server (Pod Security
 * `restricted`, RuntimeClass admission) then checks them again in the integration tests.
 * Node placement and pod overhead come from the RuntimeClass, not from here.
 */
export function buildJob(input: ManifestInput): V1Job {
  const { spec, runtime } = input
  const name = kubeJobName(input.jobId)
  const labels = jobLabels(input.jobId, input.tenant)
  const cpu = `${Math.max(1, Math.round(spec.limits.cpus * 1000))}m`
  const memory = quantityMi(spec.limits.memoryMb)
  // The container's log: at most outputBytes + 1 of each stream reaches it (the
  // launcher drains the rest in the sandbox). The workspace and /tmp are
  // memory-backed and count against memory instead.
  const ephemeral = quantityMi(
    Math.max(LOG_ALLOWANCE_MB, Math.ceil((2 * (spec.limits.outputBytes + 1)) / (1024 * 1024)) + 16),
  )
  const resources = { cpu, memory, 'ephemeral-storage': ephemeral }
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: input.namespace, labels, annotations: { [ANNOTATION_TENANT]: input.tenant } },
    spec: {
      backoffLimit: 0,
      completions: 1,
      parallelism: 1,
      // The worker enforces the exact timeout from the program's start; this is the
      // cluster's own backstop for when no worker is watching.
      activeDeadlineSeconds: Math.ceil((spec.limits.timeoutMs + input.startAllowanceMs) / 1000),
      ttlSecondsAfterFinished: input.ttlAfterFinishedSeconds,
      template: {
        metadata: { labels },
        spec: {
          // runc: the comparison runtime of benchmark tenants (a RuntimeClass named runc).
          runtimeClassName: spec.isolation === 'runc' ? 'runc' : input.runtimeClassName,
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          hostNetwork: false,
          hostPID: false,
          hostIPC: false,
          terminationGracePeriodSeconds: 1,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: SANDBOX_UID,
            runAsGroup: SANDBOX_GID,
            // Ours, not RuntimeDefault: under gVisor, RuntimeDefault's clone3 ENOSYS becomes
            // EPERM and breaks every thread (sandbox-seccomp.ts says why).
            // Named by its content's hash, so a node with another version of it (or
            // none) cannot start the pod at all rather than run it under that.
            seccompProfile: { type: 'Localhost', localhostProfile: SANDBOX_SECCOMP_PROFILE_NAME },
          },
          containers: [
            {
              name: CONTAINER_NAME,
              image: input.image,
              imagePullPolicy: 'IfNotPresent',
              // envDir: the program's environment comes from the Secret, as data, and
              // replaces the container's, to which the kubelet adds KUBERNETES_SERVICE_*
              // and the like. The container's own is only what the launcher needs.
              command: sandboxArgv(spec, runtime, {
                filesSubdir: 'files',
                stdinFile: 'stdin',
                envDir: ENV_DIR,
                pidsLimit: spec.limits.pids,
                capOutputBytes: spec.limits.outputBytes,
                requireSeccomp: true,
                waitForGo: input.waitForGo === true,
              }).map(kubeLiteral),
              // The go line comes through the API server's attach; stdin stays open past
              // one attach, so a worker that adopts the job can send it again.
              ...(input.waitForGo ? { stdin: true, stdinOnce: false } : {}),
              workingDir: WORKSPACE,
              env: Object.entries(SANDBOX_FIXED_ENV).map(([k, v]) => ({ name: k, value: kubeLiteral(v) })),
              resources: { requests: resources, limits: resources },
              securityContext: {
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                privileged: false,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'job', mountPath: JOB_FILES_MOUNT, readOnly: true },
                { name: 'workspace', mountPath: WORKSPACE },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            {
              name: 'job',
              secret: {
                secretName: name,
                defaultMode: 0o444,
                items: [
                  { key: 'stdin', path: 'stdin' },
                  ...spec.files.map((f, i) => ({ key: secretKeyOfFile(i), path: `files/${f.path}` })),
                  ...envFiles(sandboxEnv(spec)).map((f) => ({
                    key: secretKeyOfEnv(f.name),
                    path: `${ENV_DIR}/${f.name}`,
                  })),
                ],
              },
            },
            // tmpfs of exactly that size, as the local executor's: a disk-backed
            // emptyDir's sizeLimit is only checked by the kubelet's eviction pass,
            // every 10 s, and a job writes gigabytes before it runs.
            { name: 'workspace', emptyDir: { medium: 'Memory', sizeLimit: quantityMi(input.workspaceMb) } },
            { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: quantityMi(input.workspaceMb) } },
          ],
        },
      },
    },
  }
}

export interface WarmManifestInput extends Omit<ManifestInput, 'jobId' | 'tenant' | 'spec'> {
  /** The warm Job's name. */
  name: string
  /** What its pod is sized for: a job takes it only with the same memory and CPUs, and an output cap no larger. */
  limits: Limits
  /** How long it may wait for a job: its activeDeadlineSeconds until a claim sets the job's own. */
  maxIdleSeconds: number
}

/**
 * A warm Job: the same pod as a cold one (buildJob: RuntimeClass, security context,
 * seccomp, read-only root, resources, memory-backed workspace), but booted before its
 * job exists. Its container waits on stdin for the job (warmStreamLauncherArgv): the
 * job's files go to a memory-backed volume where a cold pod mounts its Secret. Pure.
 */
export function buildWarmJob(input: WarmManifestInput): V1Job {
  const spec: JobSpec = {
    runtime: input.runtime.name,
    files: [],
    entrypoint: input.runtime.defaultEntrypoint,
    args: [],
    stdin: '',
    env: {},
    limits: input.limits,
  }
  const job = buildJob({ ...input, jobId: input.name, tenant: MANAGED_BY, spec })
  const labels = {
    'app.kubernetes.io/managed-by': MANAGED_BY,
    [LABEL_JOB]: input.name,
    [LABEL_SANDBOX]: 'true',
    [LABEL_WARM]: 'idle',
  }
  job.metadata = { name: input.name, namespace: input.namespace, labels }
  const jobSpec = job.spec!
  jobSpec.activeDeadlineSeconds = input.maxIdleSeconds
  jobSpec.template.metadata = { labels }
  const pod = jobSpec.template.spec!
  const container = pod.containers[0]!
  container.command = warmStreamLauncherArgv().map(kubeLiteral)
  // stdin through the API server's attach, the one way in that needs no network path.
  container.stdin = true
  container.stdinOnce = true
  container.volumeMounts = container.volumeMounts!.map((m) =>
    m.name === 'job' ? { name: 'job', mountPath: JOB_FILES_MOUNT } : m,
  )
  pod.volumes = pod.volumes!.map((v) =>
    v.name === 'job' ? { name: 'job', emptyDir: { medium: 'Memory', sizeLimit: quantityMi(input.workspaceMb) } } : v,
  )
  return job
}
