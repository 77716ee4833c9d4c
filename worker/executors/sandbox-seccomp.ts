/**
 * The seccomp profile every sandboxed job runs under, on both executors: gVisor
 * enforces it inside the sandbox (runsc --oci-seccomp), on the job's own system
 * calls to the Sentry. It is a second wall inside the first: a job cannot reach the
 * host's kernel either way, but without it one unshare(CLONE_NEWUSER) hands the job a
 * full capability set in a user namespace of its own, and with that raw and packet
 * sockets and mount namespaces: the widest part of the Sentry that no job needs.
 *
 * Derived from containerd's RuntimeDefault for a container with no capabilities
 * (contrib/seccomp/seccomp_default.go, and the newer calls of moby's
 * profiles/seccomp/default.json): an allowlist, refusing everything else with EPERM.
 * Tightened for jobs: `syslog` only reads (dmesg), `socket` takes only the families and
 * types a program needs, and `ptrace` only what tracing one's own child needs.
 *
 * Two traps of gVisor's OCI seccomp shape it (runsc/specutils/seccomp):
 * - Every SCMP_ACT_ERRNO returns EPERM; errnoRet is ignored. RuntimeDefault answers
 *   clone3 with ENOSYS so that glibc (2.34+) falls back to clone, whose flags a
 *   filter can read; EPERM would make every pthread_create fail. clone3 is therefore
 *   SCMP_ACT_TRACE: with no tracer, the kernel (and gVisor) answers ENOSYS.
 * - A tracer runs a traced syscall after PTRACE_EVENT_SECCOMP without filtering it
 *   again, and gVisor filters before a syscall-enter stop, where a tracer may rewrite
 *   the call. So ptrace may not ask for either: no PTRACE_O_TRACESECCOMP, no
 *   PTRACE_SYSCALL or PTRACE_SYSEMU, and no attaching (ATTACH, SEIZE) to a process
 *   that did not ask to be traced (PTRACE_TRACEME).
 * Conditions on one argument are ORed by gVisor and ANDed by libseccomp (runc, for
 * the comparison runtime), so no rule here has two conditions on one argument.
 */

import { createHash } from 'node:crypto'

export type SeccompAction = 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO' | 'SCMP_ACT_TRACE'

export interface SeccompArg {
  index: number
  value: number
  valueTwo?: number
  op: 'SCMP_CMP_EQ' | 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_LE'
}

export interface SeccompRule {
  names: string[]
  action: SeccompAction
  args?: SeccompArg[]
}

/** The OCI `linux.seccomp` object (runtime-spec config-linux.md), as a Localhost profile holds it too. */
export interface SeccompProfile {
  defaultAction: SeccompAction
  defaultErrnoRet: number
  architectures: string[]
  syscalls: SeccompRule[]
}

const EPERM = 1

// containerd's RuntimeDefault allowlist (no capabilities), less `syslog` (reads only,
// below), `adjtimex`, `epoll_ctl_old` and `epoll_wait_old`, plus the calls moby's
// profile added since (close_range, epoll_pwait2, futex_waitv, rseq, landlock,
// pidfd_*, membarrier...). No 32-bit calls: gVisor dispatches only the native 64-bit
// table (it ignores `architectures`, which is for runc). Names gVisor does not know
// (cachestat, fchmodat2, futex_wait, landlock_*, map_shadow_stack, mseal, ...) are
// skipped by runsc, so those calls answer EPERM where gVisor alone would say ENOSYS:
// a libc that falls back on ENOSYS only would not fall back. glibc 2.36 (bookworm,
// every image here) calls none of them; they stay listed for runc and for releases
// of gVisor that add them.
const ALLOWED = [
  'accept',
  'accept4',
  'access',
  'alarm',
  'arch_prctl',
  'bind',
  'brk',
  'cachestat',
  'capget',
  'capset',
  'chdir',
  'chmod',
  'chown',
  'clock_adjtime',
  'clock_getres',
  'clock_gettime',
  'clock_nanosleep',
  'close',
  'close_range',
  'connect',
  'copy_file_range',
  'creat',
  'dup',
  'dup2',
  'dup3',
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_pwait',
  'epoll_pwait2',
  'epoll_wait',
  'eventfd',
  'eventfd2',
  'execve',
  'execveat',
  'exit',
  'exit_group',
  'faccessat',
  'faccessat2',
  'fadvise64',
  'fallocate',
  'fanotify_mark',
  'fchdir',
  'fchmod',
  'fchmodat',
  'fchmodat2',
  'fchown',
  'fchownat',
  'fcntl',
  'fdatasync',
  'fgetxattr',
  'flistxattr',
  'flock',
  'fork',
  'fremovexattr',
  'fsetxattr',
  'fstat',
  'fstatfs',
  'fsync',
  'ftruncate',
  'futex',
  'futex_requeue',
  'futex_wait',
  'futex_waitv',
  'futex_wake',
  'futimesat',
  'get_robust_list',
  'get_thread_area',
  'getcpu',
  'getcwd',
  'getdents',
  'getdents64',
  'getegid',
  'geteuid',
  'getgid',
  'getgroups',
  'getitimer',
  'getpeername',
  'getpgid',
  'getpgrp',
  'getpid',
  'getppid',
  'getpriority',
  'getrandom',
  'getresgid',
  'getresuid',
  'getrlimit',
  'getrusage',
  'getsid',
  'getsockname',
  'getsockopt',
  'gettid',
  'gettimeofday',
  'getuid',
  'getxattr',
  'inotify_add_watch',
  'inotify_init',
  'inotify_init1',
  'inotify_rm_watch',
  'io_cancel',
  'io_destroy',
  'io_getevents',
  'io_pgetevents',
  'io_setup',
  'io_submit',
  'ioctl',
  'ioprio_get',
  'ioprio_set',
  'kill',
  'landlock_add_rule',
  'landlock_create_ruleset',
  'landlock_restrict_self',
  'lchown',
  'lgetxattr',
  'link',
  'linkat',
  'listen',
  'listxattr',
  'llistxattr',
  'lremovexattr',
  'lseek',
  'lsetxattr',
  'lstat',
  'madvise',
  'map_shadow_stack',
  'membarrier',
  'memfd_create',
  'mincore',
  'mkdir',
  'mkdirat',
  'mknod',
  'mknodat',
  'mlock',
  'mlock2',
  'mlockall',
  'mmap',
  'modify_ldt',
  'mprotect',
  'mq_getsetattr',
  'mq_notify',
  'mq_open',
  'mq_timedreceive',
  'mq_timedsend',
  'mq_unlink',
  'mremap',
  'mseal',
  'msgctl',
  'msgget',
  'msgrcv',
  'msgsnd',
  'msync',
  'munlock',
  'munlockall',
  'munmap',
  'nanosleep',
  'newfstatat',
  'open',
  'openat',
  'openat2',
  'pause',
  'pidfd_open',
  'pidfd_send_signal',
  'pipe',
  'pipe2',
  'pkey_alloc',
  'pkey_free',
  'pkey_mprotect',
  'poll',
  'ppoll',
  'prctl',
  'pread64',
  'preadv',
  'preadv2',
  'prlimit64',
  'process_mrelease',
  'pselect6',
  'pwrite64',
  'pwritev',
  'pwritev2',
  'read',
  'readahead',
  'readlink',
  'readlinkat',
  'readv',
  'recvfrom',
  'recvmmsg',
  'recvmsg',
  'remap_file_pages',
  'removexattr',
  'rename',
  'renameat',
  'renameat2',
  'restart_syscall',
  'rmdir',
  'rseq',
  'rt_sigaction',
  'rt_sigpending',
  'rt_sigprocmask',
  'rt_sigqueueinfo',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'rt_tgsigqueueinfo',
  'sched_get_priority_max',
  'sched_get_priority_min',
  'sched_getaffinity',
  'sched_getattr',
  'sched_getparam',
  'sched_getscheduler',
  'sched_rr_get_interval',
  'sched_setaffinity',
  'sched_setattr',
  'sched_setparam',
  'sched_setscheduler',
  'sched_yield',
  'seccomp',
  'select',
  'semctl',
  'semget',
  'semop',
  'semtimedop',
  'sendfile',
  'sendmmsg',
  'sendmsg',
  'sendto',
  'set_robust_list',
  'set_thread_area',
  'set_tid_address',
  'setfsgid',
  'setfsuid',
  'setgid',
  'setgroups',
  'setitimer',
  'setpgid',
  'setpriority',
  'setregid',
  'setresgid',
  'setresuid',
  'setreuid',
  'setrlimit',
  'setsid',
  'setsockopt',
  'setuid',
  'setxattr',
  'shmat',
  'shmctl',
  'shmdt',
  'shmget',
  'shutdown',
  'sigaltstack',
  'signalfd',
  'signalfd4',
  'socketpair',
  'splice',
  'stat',
  'statfs',
  'statx',
  'symlink',
  'symlinkat',
  'sync',
  'sync_file_range',
  'syncfs',
  'sysinfo',
  'tee',
  'tgkill',
  'time',
  'timer_create',
  'timer_delete',
  'timer_getoverrun',
  'timer_gettime',
  'timer_settime',
  'timerfd_create',
  'timerfd_gettime',
  'timerfd_settime',
  'times',
  'tkill',
  'truncate',
  'umask',
  'uname',
  'unlink',
  'unlinkat',
  'utime',
  'utimensat',
  'utimes',
  'vfork',
  'vmsplice',
  'wait4',
  'waitid',
  'write',
  'writev',
] as const

/** The namespace flags of clone(2): a child in a new namespace of any kind is refused. */
export const CLONE_NAMESPACE_FLAGS =
  0x00020000 /* NEWNS */ |
  0x02000000 /* NEWCGROUP */ |
  0x04000000 /* NEWUTS */ |
  0x08000000 /* NEWIPC */ |
  0x10000000 /* NEWUSER */ |
  0x20000000 /* NEWPID */ |
  0x40000000 /* NEWNET */

const AF_UNIX = 1
const AF_INET = 2
const AF_INET6 = 10
const AF_NETLINK = 16
const NETLINK_ROUTE = 0
// The low bits of socket(2)'s type; SOCK_NONBLOCK and SOCK_CLOEXEC sit above them.
const SOCK_TYPE_MASK = 0xf
const SOCK_STREAM = 1
const SOCK_DGRAM = 2
const SOCK_SEQPACKET = 5

const PTRACE_O_TRACESECCOMP = 0x80
/**
 * ptrace requests a parent tracing its own child (which asked with PTRACE_TRACEME)
 * needs: read and write its memory and registers, continue, step, kill, detach, and
 * the event and signal queries. Refused: ATTACH (16), SEIZE (0x4206), SYSCALL (24),
 * SYSEMU (31, 32), SECCOMP_GET_FILTER (0x420c); SETOPTIONS only without TRACESECCOMP.
 */
const PTRACE_REQUESTS_ALLOWED = [
  0 /* TRACEME */, 1, 2, 3 /* PEEK* */, 4, 5, 6 /* POKE* */, 7 /* CONT */, 8 /* KILL */, 9 /* SINGLESTEP */, 12, 13, 14,
  15 /* GET/SETREGS, FPREGS */, 17 /* DETACH */, 18, 19 /* GET/SETFPXREGS */, 25, 26 /* GET/SET_THREAD_AREA */,
  30 /* ARCH_PRCTL */, 0x4201 /* GETEVENTMSG */, 0x4202, 0x4203 /* GET/SETSIGINFO */, 0x4204,
  0x4205 /* GET/SETREGSET */, 0x4207 /* INTERRUPT */, 0x4208 /* LISTEN */, 0x4209 /* PEEKSIGINFO */, 0x420a,
  0x420b /* GET/SETSIGMASK */,
] as const
const PTRACE_SETOPTIONS_REQUESTS = [0x4200 /* SETOPTIONS */, 21 /* OLDSETOPTIONS */] as const

/** What the profile refuses that a program might try, for the README, verify and tests. */
export const REFUSED = {
  namespaces: ['unshare', 'setns', 'clone with CLONE_NEW* flags', 'clone3 (ENOSYS: glibc falls back to clone)'],
  mounts: ['mount', 'umount2', 'pivot_root', 'chroot', 'fsopen', 'fsmount', 'move_mount', 'open_tree'],
  sockets: [
    'AF_PACKET',
    'SOCK_RAW and SOCK_PACKET of AF_INET and AF_INET6',
    'every family but AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE',
  ],
  kernel: [
    'keyctl',
    'add_key',
    'request_key',
    'bpf',
    'perf_event_open',
    'userfaultfd',
    'io_uring_*',
    'kexec_load',
    'init_module',
    'open_by_handle_at',
    'name_to_handle_at',
    'process_vm_readv',
    'process_vm_writev',
    'kcmp',
    'syslog (but reading it)',
    'acct',
    'reboot',
    'settimeofday',
    'swapon',
  ],
  ptrace: ['PTRACE_ATTACH', 'PTRACE_SEIZE', 'PTRACE_SYSCALL', 'PTRACE_SYSEMU', 'PTRACE_O_TRACESECCOMP'],
} as const

const eq = (index: number, value: number): SeccompArg => ({ index, value, op: 'SCMP_CMP_EQ' })
const masked = (index: number, mask: number, value: number): SeccompArg => ({
  index,
  value: mask,
  valueTwo: value,
  op: 'SCMP_CMP_MASKED_EQ',
})

/** The profile, built once from the lists above. Pure. */
export function buildSandboxSeccomp(): SeccompProfile {
  const socketRules: SeccompRule[] = [
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [eq(0, AF_UNIX)] },
    ...[AF_INET, AF_INET6].flatMap((family) =>
      [SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET].map(
        (type): SeccompRule => ({
          names: ['socket'],
          action: 'SCMP_ACT_ALLOW',
          args: [eq(0, family), masked(1, SOCK_TYPE_MASK, type)],
        }),
      ),
    ),
    // getifaddrs(3) lists interfaces over NETLINK_ROUTE; changing them needs CAP_NET_ADMIN.
    { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [eq(0, AF_NETLINK), eq(2, NETLINK_ROUTE)] },
  ]
  const ptraceRules: SeccompRule[] = [
    ...PTRACE_REQUESTS_ALLOWED.map(
      (request): SeccompRule => ({ names: ['ptrace'], action: 'SCMP_ACT_ALLOW', args: [eq(0, request)] }),
    ),
    ...PTRACE_SETOPTIONS_REQUESTS.map(
      (request): SeccompRule => ({
        names: ['ptrace'],
        action: 'SCMP_ACT_ALLOW',
        args: [eq(0, request), masked(3, PTRACE_O_TRACESECCOMP, 0)],
      }),
    ),
  ]
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    // One profile for both node architectures; each resolves the names to its own numbers.
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
    syscalls: [
      { names: [...ALLOWED], action: 'SCMP_ACT_ALLOW' },
      // PER_LINUX, with UNAME26, with ADDR_NO_RANDOMIZE, both, and the query.
      ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map(
        (persona): SeccompRule => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [eq(0, persona)] }),
      ),
      // Threads and processes, in no new namespace.
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [masked(0, CLONE_NAMESPACE_FLAGS, 0)] },
      // ENOSYS with no tracer, so glibc falls back to clone, whose flags the rule above reads.
      { names: ['clone3'], action: 'SCMP_ACT_TRACE' },
      // dmesg: reading the log only (READ_ALL, SIZE_BUFFER). gVisor's is its own boot
      // banner, nothing of the host's; clearing it or changing the console is refused.
      ...[3, 10].map((type): SeccompRule => ({ names: ['syslog'], action: 'SCMP_ACT_ALLOW', args: [eq(0, type)] })),
      ...socketRules,
      ...ptraceRules,
    ],
  }
}

export const SANDBOX_SECCOMP: SeccompProfile = buildSandboxSeccomp()

/** The profile as a node's kubelet reads it (a Localhost profile): the same object as the OCI spec's. */
export function seccompProfileJson(profile: SeccompProfile = SANDBOX_SECCOMP): string {
  return `${JSON.stringify(profile, null, 2)}\n`
}

/**
 * Its name under a node's kubelet seccomp directory: the content's hash is in it, so
 * sandbox pods name exactly this version, and a node holding another (or none) cannot
 * start them (the job ends `error` with the kubelet's words) instead of running them
 * under that one. deploy/kubernetes/overlays/self-managed/node/seccomp/ holds the file.
 */
export const SANDBOX_SECCOMP_PROFILE_NAME = `airlock/sandbox-${createHash('sha256').update(seccompProfileJson()).digest('hex').slice(0, 12)}.json`
