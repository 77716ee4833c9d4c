import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../core/config.js'
import { resolveJobSpec } from '../../core/job-spec.js'
import { findRuntime } from '../../core/runtimes.js'
import { buildOciConfig } from '../../worker/executors/local/oci-bundle.js'
import { NO_SECCOMP_EXIT, NO_SECCOMP_MESSAGE, sandboxArgv } from '../../worker/executors/sandbox-process.js'
import {
  CLONE_NAMESPACE_FLAGS,
  REFUSED,
  SANDBOX_SECCOMP,
  SANDBOX_SECCOMP_PROFILE_NAME,
  seccompProfileJson,
  type SeccompArg,
  type SeccompProfile,
} from '../../worker/executors/sandbox-seccomp.js'

// The profile as data: what it lets through is worked out here with the OCI rule
// semantics (a rule's conditions all hold; any rule of a call lets it through), the
// same the probes of `airlock verify` then check inside a real sandbox.

const NODE_PROFILES = 'deploy/kubernetes/overlays/self-managed/node/seccomp'

function holds(arg: SeccompArg, args: number[]): boolean {
  const v = args[arg.index] ?? 0
  switch (arg.op) {
    case 'SCMP_CMP_EQ':
      return v === arg.value
    case 'SCMP_CMP_LE':
      return v <= arg.value
    case 'SCMP_CMP_MASKED_EQ':
      return (v & arg.value) === arg.valueTwo
  }
}

/** The action the profile takes on a call with these arguments. */
function action(profile: SeccompProfile, name: string, ...args: number[]): string {
  const rule = profile.syscalls.find((r) => r.names.includes(name) && (r.args ?? []).every((a) => holds(a, args)))
  return rule?.action ?? profile.defaultAction
}

t.test('the profile refuses by default, with EPERM, on 64-bit architectures only', async (t) => {
  t.equal(SANDBOX_SECCOMP.defaultAction, 'SCMP_ACT_ERRNO')
  t.equal(SANDBOX_SECCOMP.defaultErrnoRet, 1)
  t.same(SANDBOX_SECCOMP.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'])
  t.equal(action(SANDBOX_SECCOMP, 'no_such_call'), 'SCMP_ACT_ERRNO')
})

t.test('namespace, mount and kernel-interface calls are refused whatever their arguments', async (t) => {
  const calls = [
    'unshare',
    'setns',
    'mount',
    'umount2',
    'pivot_root',
    'chroot',
    'fsopen',
    'fsmount',
    'move_mount',
    'open_tree',
    'keyctl',
    'add_key',
    'request_key',
    'bpf',
    'perf_event_open',
    'userfaultfd',
    'io_uring_setup',
    'io_uring_enter',
    'io_uring_register',
    'kexec_load',
    'init_module',
    'finit_module',
    'open_by_handle_at',
    'name_to_handle_at',
    'process_vm_readv',
    'process_vm_writev',
    'kcmp',
    'acct',
    'reboot',
    'settimeofday',
    'swapon',
    'get_mempolicy',
    'socketcall',
  ]
  for (const call of calls) {
    t.notOk(
      SANDBOX_SECCOMP.syscalls.some((r) => r.names.includes(call)),
      `${call}: in no rule`,
    )
    t.equal(action(SANDBOX_SECCOMP, call, 0, 0, 0), 'SCMP_ACT_ERRNO', `${call}: refused`)
  }
})

t.test('syslog only reads the log (dmesg)', async (t) => {
  t.equal(action(SANDBOX_SECCOMP, 'syslog', 3, 0, 0), 'SCMP_ACT_ALLOW', 'READ_ALL')
  t.equal(action(SANDBOX_SECCOMP, 'syslog', 10, 0, 0), 'SCMP_ACT_ALLOW', 'SIZE_BUFFER')
  for (const type of [0, 1, 2, 4, 5, 6, 7, 8, 9])
    t.equal(action(SANDBOX_SECCOMP, 'syslog', type, 0, 0), 'SCMP_ACT_ERRNO', `action ${type} refused`)
})

t.test(
  'clone makes threads and processes but no namespace; clone3 answers ENOSYS so glibc falls back to clone',
  async (t) => {
    const CLONE_THREAD_FLAGS = 0x3d0f00 // what glibc's pthread_create passes
    const SIGCHLD = 17
    t.equal(action(SANDBOX_SECCOMP, 'clone', CLONE_THREAD_FLAGS), 'SCMP_ACT_ALLOW')
    t.equal(action(SANDBOX_SECCOMP, 'clone', SIGCHLD), 'SCMP_ACT_ALLOW', 'fork')
    t.equal(action(SANDBOX_SECCOMP, 'clone', 0x4000 | 0x100 | SIGCHLD), 'SCMP_ACT_ALLOW', 'vfork, as posix_spawn does')
    for (const flag of [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000]) {
      t.ok(CLONE_NAMESPACE_FLAGS & flag, `0x${flag.toString(16)} is a namespace flag`)
      t.equal(
        action(SANDBOX_SECCOMP, 'clone', flag | SIGCHLD),
        'SCMP_ACT_ERRNO',
        `clone with 0x${flag.toString(16)} is refused`,
      )
    }
    t.equal(
      action(SANDBOX_SECCOMP, 'clone3', 0, 64),
      'SCMP_ACT_TRACE',
      'clone3: the kernel answers ENOSYS to TRACE when nothing traces the caller',
    )
  },
)

t.test('sockets: Unix, TCP, UDP and NETLINK_ROUTE only; no raw or packet socket of any family', async (t) => {
  const [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET] = [1, 2, 10, 16, 17]
  const [STREAM, DGRAM, RAW, SEQPACKET, PACKET, NONBLOCK_CLOEXEC] = [1, 2, 3, 5, 10, 0o4000 | 0o2000000]
  for (const family of [AF_INET, AF_INET6]) {
    for (const type of [STREAM, DGRAM, SEQPACKET, STREAM | NONBLOCK_CLOEXEC])
      t.equal(action(SANDBOX_SECCOMP, 'socket', family, type, 0), 'SCMP_ACT_ALLOW', `family ${family} type ${type}`)
    for (const type of [RAW, PACKET, RAW | NONBLOCK_CLOEXEC])
      t.equal(
        action(SANDBOX_SECCOMP, 'socket', family, type, 1),
        'SCMP_ACT_ERRNO',
        `family ${family} type ${type} refused`,
      )
  }
  t.equal(action(SANDBOX_SECCOMP, 'socket', AF_UNIX, STREAM, 0), 'SCMP_ACT_ALLOW')
  t.equal(action(SANDBOX_SECCOMP, 'socket', AF_NETLINK, RAW, 0), 'SCMP_ACT_ALLOW', 'NETLINK_ROUTE, for getifaddrs')
  t.equal(
    action(SANDBOX_SECCOMP, 'socket', AF_NETLINK, RAW, 12),
    'SCMP_ACT_ERRNO',
    'other netlink protocols (netfilter) refused',
  )
  for (const type of [RAW, DGRAM, STREAM])
    t.equal(
      action(SANDBOX_SECCOMP, 'socket', AF_PACKET, type, 0x300),
      'SCMP_ACT_ERRNO',
      `AF_PACKET type ${type} refused`,
    )
  for (const family of [
    4 /* AF_IPX */, 5, 9 /* AF_X25 */, 29 /* AF_CAN */, 38 /* AF_ALG */, 40 /* AF_VSOCK */, 44 /* AF_XDP */,
  ])
    t.equal(action(SANDBOX_SECCOMP, 'socket', family, STREAM, 0), 'SCMP_ACT_ERRNO', `family ${family} refused`)
})

t.test(
  'ptrace: a parent traces a child that asked, but attaches to nothing, traces no system call and no seccomp event',
  async (t) => {
    const PTRACE_O_TRACESECCOMP = 0x80
    for (const request of [
      0 /* TRACEME */, 1, 4, 7 /* CONT */, 8, 9, 12, 13, 17 /* DETACH */, 0x4201, 0x4202, 0x4204, 0x4207,
    ])
      t.equal(
        action(SANDBOX_SECCOMP, 'ptrace', request, 2, 0, 0),
        'SCMP_ACT_ALLOW',
        `request 0x${request.toString(16)}`,
      )
    for (const request of [
      16 /* ATTACH */, 0x4206 /* SEIZE */, 24 /* SYSCALL */, 31, 32 /* SYSEMU */, 0x420c /* SECCOMP_GET_FILTER */,
    ])
      t.equal(
        action(SANDBOX_SECCOMP, 'ptrace', request, 2, 0, 0),
        'SCMP_ACT_ERRNO',
        `request 0x${request.toString(16)} refused`,
      )
    for (const request of [0x4200, 21]) {
      t.equal(action(SANDBOX_SECCOMP, 'ptrace', request, 2, 0, 0x1), 'SCMP_ACT_ALLOW', 'SETOPTIONS with TRACESYSGOOD')
      t.equal(
        action(SANDBOX_SECCOMP, 'ptrace', request, 2, 0, 0x1 | PTRACE_O_TRACESECCOMP),
        'SCMP_ACT_ERRNO',
        'SETOPTIONS with TRACESECCOMP refused',
      )
    }
    t.ok(REFUSED.ptrace.includes('PTRACE_O_TRACESECCOMP'))
  },
)

t.test('no rule has two conditions on one argument (gVisor ORs them where libseccomp ANDs them)', async (t) => {
  for (const rule of SANDBOX_SECCOMP.syscalls) {
    const indexes = (rule.args ?? []).map((a) => a.index)
    t.equal(new Set(indexes).size, indexes.length, `${rule.names.join(',')}: ${JSON.stringify(rule.args)}`)
  }
})

t.test('the programs of every runtime keep the calls they need', async (t) => {
  for (const call of [
    'read',
    'write',
    'openat',
    'mmap',
    'mprotect',
    'futex',
    'execve',
    'wait4',
    'rseq',
    'set_robust_list',
    'getrandom',
    'statx',
    'close_range',
    'epoll_pwait',
    'pipe2',
    'sched_getaffinity',
    'prlimit64',
    'membarrier',
    'madvise',
    'arch_prctl',
  ]) {
    t.equal(action(SANDBOX_SECCOMP, call), 'SCMP_ACT_ALLOW', call)
  }
})

t.test('every local sandbox gets the profile in its OCI config; only the benchmark can leave it out', async (t) => {
  const spec = resolveJobSpec({ runtime: 'python', source: 'print(1)' }, loadConfig({}))
  const input = {
    spec,
    runtime: findRuntime('python')!,
    rootfsPath: '/r',
    jobFilesPath: '/f',
    cgroupsPath: '/a/x',
    workspaceMb: 32,
    network: 'none' as const,
  }
  const config = buildOciConfig(input) as { linux: { seccomp?: unknown } }
  t.same(config.linux.seccomp, SANDBOX_SECCOMP)
  t.same(buildOciConfig({ ...input, seccomp: true }), config)
  t.notOk('seccomp' in (buildOciConfig({ ...input, seccomp: false }) as { linux: object }).linux)
})

t.test(
  "the nodes' Localhost profile is this profile, byte for byte, under the name sandbox pods ask for",
  async (t) => {
    const [dir, file] = SANDBOX_SECCOMP_PROFILE_NAME.split('/') as [string, string]
    t.match(file, /^sandbox-[0-9a-f]{12}\.json$/, 'named by its hash')
    t.same(
      readdirSync(join(NODE_PROFILES, dir)),
      [file],
      `only this version is shipped (regenerate it with seccompProfileJson and remove the old one)`,
    )
    t.equal(readFileSync(join(NODE_PROFILES, SANDBOX_SECCOMP_PROFILE_NAME), 'utf8'), seccompProfileJson())
    t.equal(
      SANDBOX_SECCOMP_PROFILE_NAME,
      `airlock/sandbox-${createHash('sha256').update(seccompProfileJson()).digest('hex').slice(0, 12)}.json`,
      'a change to the profile changes the name',
    )
  },
)

t.test('the Kubernetes launcher runs no program when it is not under a seccomp filter', async (t) => {
  const own = readFileSync('/proc/self/status', 'utf8').match(/^Seccomp:\s*(\d+)/m)?.[1]
  if (own !== '0') {
    t.comment(
      `skipped: this test process is itself under a seccomp filter (mode ${own}), so the host cannot show a launcher without one`,
    )
    return
  }
  const spec = resolveJobSpec({ runtime: 'bash', source: 'x' }, loadConfig({}))
  const argv = sandboxArgv(spec, findRuntime('bash')!, { requireSeccomp: true })
  // The host's dash stands in for the sandbox's, with the program's files nowhere:
  // the check comes before anything else, so nothing is copied or run.
  const r = spawnSync('/bin/sh', ['-c', argv[2]!, ...argv.slice(3)], { encoding: 'utf8' })
  t.equal(r.status, NO_SECCOMP_EXIT)
  t.equal(r.stderr.trim(), NO_SECCOMP_MESSAGE)
  t.equal(r.stdout, '')
  t.notMatch(sandboxArgv(spec, findRuntime('bash')!)[2]!, /Seccomp/, 'without the option there is no check')
})
