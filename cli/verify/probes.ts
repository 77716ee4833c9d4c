import type { Job } from '../../core/job.js'
import type { JobRequest } from '../../core/job-spec.js'
import type { Airlock } from '../../sdk/src/index.js'

/**
 * Hostile workloads, each with the outcome that proves one claim about the sandbox.
 * `airlock verify` and the test suite run the same catalog through the public API,
 * so what operators check on their deployment is exactly what CI checks here.
 */
export interface ProbeResult {
  pass: boolean
  /** What the attack actually got: a status, an exit code or the exact error. */
  observed: string
}

export interface Probe {
  name: string
  claim: string
  run(client: Airlock): Promise<ProbeResult>
}

/** A probe's program prints one JSON line last; this reads it. */
export function lastJson<T = Record<string, unknown>>(job: Job): T | undefined {
  const line = job.stdout.trim().split('\n').pop()
  try {
    return line ? (JSON.parse(line) as T) : undefined
  } catch {
    return undefined
  }
}

function py(source: string, limits?: JobRequest['limits']): JobRequest {
  return { runtime: 'python', source, ...(limits ? { limits } : {}) }
}

function verdict(pass: boolean, observed: string): ProbeResult {
  return { pass, observed }
}

function unexpected(job: Job): ProbeResult {
  return verdict(
    false,
    `job ${job.status}${job.exitCode !== null ? ` (exit ${job.exitCode})` : ''}${job.reason ? `: ${job.reason}` : ''}; stderr: ${job.stderr.slice(0, 200)}`,
  )
}

/** A program that prints {"found": [...]}: files named with `marker` and processes whose command line holds it. */
function findMarker(marker: string): string {
  return `import os, json
found = []
for top in ["/workspace", "/tmp", "/"]:
    for root, dirs, files in os.walk(top):
        if root.startswith(("/proc", "/sys", "/dev")): continue
        found += [os.path.join(root, f) for f in files if "${marker}" in f]
        if top == "/" and root.count("/") > 3: dirs[:] = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if "${marker}" in open(f"/proc/{p}/cmdline").read(): found.append(f"/proc/{p}")
        except OSError: pass
print(json.dumps({"found": found}))`
}

const single = (name: string, claim: string, request: JobRequest, check: (job: Job) => ProbeResult): Probe => ({
  name,
  claim,
  run: async (client) => check(await client.run(request)),
})

// Python helper embedded in network probes: the errno a TCP connect gets.
const TCP = `
import json, socket
def tcp(host, port):
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.close()
        return "connected"
    except OSError as e:
        return f"errno {e.errno}: {e.strerror or e}"
`

const failedToConnect = (r: string) => r !== 'connected' && /^errno \d+/.test(r)

// Python helper embedded in the seccomp probes: raw system calls by number (x86_64
// and arm64), each answering "ok" or the errno's name, so a probe states exactly
// what the kernel in the sandbox said.
const SYSCALLS = `
import ctypes, errno, json, os, signal, struct, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {
  "x86_64": dict(unshare=272, setns=308, clone=56, clone3=435, ptrace=101, keyctl=250, add_key=248, request_key=249, bpf=321,
    perf_event_open=298, userfaultfd=323, io_uring_setup=425, mount=165, umount2=166, pivot_root=155, chroot=161, kexec_load=246,
    init_module=175, open_by_handle_at=304, process_vm_readv=310, syslog=103),
  "aarch64": dict(unshare=97, setns=268, clone=220, clone3=435, ptrace=117, keyctl=219, add_key=217, request_key=218, bpf=280,
    perf_event_open=241, userfaultfd=282, io_uring_setup=425, mount=40, umount2=39, pivot_root=41, chroot=51, kexec_load=104,
    init_module=105, open_by_handle_at=265, process_vm_readv=270, syslog=116),
}[os.uname().machine]
def sys(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    if r == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return r
def ok(r):
    return "ok" if isinstance(r, int) else r
def forked(r):
    # A clone that succeeded returns twice: the child leaves at once.
    if r == 0: os._exit(0)
    if isinstance(r, int):
        os.waitpid(r, 0)
        return "created"
    return r
def status(field):
    return [l.split(":", 1)[1].strip() for l in open("/proc/self/status") if l.startswith(field + ":")][0]
def in_child(fn):
    # Each attempt in a child of its own, so one that succeeds changes nothing for the next.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try: os.write(w, json.dumps(fn()).encode())
        finally: os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    return json.loads(os.read(r, 65536) or b'"no answer"')
`

/** What a refused call answers: our profile's EPERM, or ENOSYS where it asks for that (clone3). */
const refused = (r: unknown) => r === 'EPERM' || r === 'ENOSYS'
const listing = (r: Record<string, unknown>) =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join('; ')

export const PROBES: readonly Probe[] = [
  single(
    'kernel.gvisor',
    "uname and dmesg show gVisor's kernel",
    py(
      'import json, platform, subprocess\nd = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()\nprint(json.dumps({"release": platform.release(), "dmesg": d[0] if d else ""}))',
    ),
    (job) => {
      const r = lastJson<{ release: string; dmesg: string }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(/gvisor/i.test(r.dmesg), `uname -r ${r.release}; dmesg: ${r.dmesg}`)
    },
  ),

  single(
    'identity.non-root',
    'the program runs as a non-root user',
    py('import os, json\nprint(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid()}))'),
    (job) => {
      const r = lastJson<{ uid: number; euid: number; gid: number }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(r.uid !== 0 && r.euid !== 0 && r.gid !== 0, `uid ${r.uid}, euid ${r.euid}, gid ${r.gid}`)
    },
  ),

  single(
    'identity.capabilities',
    'the program holds no capabilities',
    py(
      'import json\ncaps = {l.split(":")[0]: l.split()[1] for l in open("/proc/self/status") if l.startswith("Cap")}\nprint(json.dumps(caps))',
    ),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const held = Object.entries(r).filter(([, v]) => !/^0+$/.test(v))
      return verdict(
        held.length === 0 && 'CapEff' in r,
        Object.entries(r)
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
      )
    },
  ),

  single(
    'identity.setuid',
    'setuid gives nothing: setuid(0) is refused and no setuid/setgid programs exist',
    py(`import os, json, stat
try:
    os.setuid(0); res = "became root"
except OSError as e:
    res = f"errno {e.errno}: {e.strerror}"
found = []
for d in ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/local"]:
    for root, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            try:
                if os.lstat(p).st_mode & (stat.S_ISUID | stat.S_ISGID): found.append(p)
            except OSError: pass
print(json.dumps({"setuid": res, "setuidFiles": found[:10]}))`),
    (job) => {
      const r = lastJson<{ setuid: string; setuidFiles: string[] }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(
        r.setuid.startsWith('errno 1:') && r.setuidFiles.length === 0,
        `setuid(0): ${r.setuid}; setuid/setgid files: ${r.setuidFiles.length ? r.setuidFiles.join(', ') : 'none'}`,
      )
    },
  ),

  single(
    'fs.read-only-root',
    'writing to /, /usr and /etc fails; / is mounted read-only',
    py(`import json
out = {}
for p in ["/probe", "/usr/probe", "/etc/probe", "/etc/passwd"]:
    try:
        open(p, "a").close(); out[p] = "written"
    except OSError as e:
        out[p] = f"errno {e.errno}: {e.strerror}"
root = [l.split() for l in open("/proc/mounts") if l.split()[1] == "/"]
out["rootMount"] = root[-1][3] if root else "unknown"
print(json.dumps(out))`),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const writes = Object.entries(r).filter(([k]) => k !== 'rootMount')
      const refused = writes.every(([, v]) => /^errno (13|30):/.test(v))
      const ro = (r.rootMount ?? '').split(',').includes('ro')
      return verdict(refused && ro, `${writes.map(([k, v]) => `${k}: ${v}`).join('; ')}; / mounted ${r.rootMount}`)
    },
  ),

  single(
    'fs.workspace-fill',
    'filling the workspace stops at its size with ENOSPC',
    py(
      `import json, os
written = 0
err = "none"
try:
    with open("/workspace/fill", "wb") as f:
        while written < 8 * 1024 ** 3:
            f.write(b"\\0" * (1 << 20)); f.flush(); written += 1 << 20
except OSError as e:
    err = f"errno {e.errno}: {e.strerror}"
print(json.dumps({"writtenMb": written >> 20, "error": err}))`,
      { timeoutMs: 60_000 },
    ),
    (job) => {
      const r = lastJson<{ writtenMb: number; error: string }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(r.error.startsWith('errno 28:'), `stopped after ${r.writtenMb} MiB with ${r.error}`)
    },
  ),

  single(
    'resources.fork-bomb',
    'a fork bomb is stopped by the process limit and the job ends',
    py(
      `import os, json, time
n = 0
err = "none"
try:
    while n < 10000:
        pid = os.fork()
        if pid == 0:
            time.sleep(30); os._exit(0)
        n += 1
except OSError as e:
    err = f"errno {e.errno}: {e.strerror}"
print(json.dumps({"forked": n, "error": err}), flush=True)
os._exit(0)`,
      { pids: 32, timeoutMs: 60_000 },
    ),
    (job) => {
      const r = lastJson<{ forked: number; error: string }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(
        r.error.startsWith('errno 11:') && r.forked < 32,
        `${r.forked} forks, then ${r.error}; job ${job.status}`,
      )
    },
  ),

  single(
    'resources.memory-bomb',
    'allocating past the memory limit ends the job as oom',
    py('chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))', { memoryMb: 64, timeoutMs: 60_000 }),
    (job) => verdict(job.status === 'oom', `job ${job.status}${job.reason ? `: ${job.reason}` : ''}`),
  ),

  {
    name: 'resources.cpu-spin',
    claim: 'a CPU spin ends as timeout while other jobs keep running',
    async run(client) {
      let spinning = (): void => undefined
      const started = new Promise<void>((resolve) => (spinning = resolve))
      // Half a CPU each, so both fit on a small node next to each other; 20 s leaves the
      // other job time to start a sandbox (a pod, on Kubernetes) on a busy machine.
      const spin = client.run(
        py('print("spinning", flush=True)\nwhile True:\n    pass', { timeoutMs: 20_000, cpus: 0.5 }),
        { onOutput: () => spinning() },
      )
      // The other job goes in once the spin really spins, however long its sandbox took to start.
      await Promise.race([started, spin])
      const other = await client.run({
        runtime: 'bash',
        source: 'echo alive',
        limits: { timeoutMs: 30_000, cpus: 0.5 },
      })
      const spun = await spin
      // Both times are the server's, so a client's clock does not matter.
      const lead = Date.parse(spun.finishedAt ?? '') - Date.parse(other.finishedAt ?? '')
      const pass = spun.status === 'timeout' && other.status === 'succeeded' && other.stdout === 'alive\n' && lead > 0
      return verdict(
        pass,
        `spin: ${spun.status} after ${spun.timings.runMs} ms; other job: ${other.status} ${JSON.stringify(other.stdout)}, ended ${(lead / 1000).toFixed(1)} s before the spin`,
      )
    },
  },

  single(
    'resources.output-flood',
    'an output flood is capped and marked truncated',
    py('import sys\nwhile True:\n    sys.stdout.write("A" * 65536)', { outputBytes: 4096, timeoutMs: 3000 }),
    (job) =>
      verdict(
        job.truncated && job.stdout.length === 4096 && job.status === 'timeout',
        `job ${job.status}, truncated ${job.truncated}, kept ${job.stdout.length} bytes`,
      ),
  ),

  single(
    'network.dns',
    'DNS lookups fail',
    py(
      'import json, socket\ntry:\n    r = str(socket.getaddrinfo("example.com", 443)[0][4])\nexcept OSError as e:\n    r = f"errno {e.errno}: {e}"\nprint(json.dumps({"dns": r}))',
    ),
    (job) => {
      const r = lastJson<{ dns: string }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(r.dns.startsWith('errno'), `getaddrinfo(example.com): ${r.dns}`)
    },
  ),

  single(
    'network.host-ports',
    "TCP to the host's 127.0.0.1 service ports fails (Redis, API, SSH, kubelet, etcd)",
    py(`${TCP}
print(json.dumps({str(p): tcp("127.0.0.1", p) for p in [6379, 8080, 22, 10250, 2379]}))`),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(
        Object.values(r).every(failedToConnect),
        Object.entries(r)
          .map(([p, v]) => `:${p} ${v}`)
          .join('; '),
      )
    },
  ),

  single(
    'network.external',
    'TCP to an external address fails',
    py(`${TCP}\nprint(json.dumps({"1.1.1.1:443": tcp("1.1.1.1", 443), "8.8.8.8:53": tcp("8.8.8.8", 53)}))`),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(
        Object.values(r).every(failedToConnect),
        Object.entries(r)
          .map(([p, v]) => `${p} ${v}`)
          .join('; '),
      )
    },
  ),

  single(
    'network.metadata',
    'the cloud metadata address 169.254.169.254 is unreachable',
    py(`${TCP}\nprint(json.dumps({"r": tcp("169.254.169.254", 80)}))`),
    (job) => {
      const r = lastJson<{ r: string }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(failedToConnect(r.r), `169.254.169.254:80 ${r.r}`)
    },
  ),

  // Current gVisor with --network=none may have no /sys/class/net at all; /proc/net/dev lists the same interfaces.
  single(
    'network.interfaces',
    'the sandbox has no network interface but loopback',
    py(
      'import os, json\nif os.path.isdir("/sys/class/net"):\n    r = os.listdir("/sys/class/net")\nelse:\n    r = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]\nprint(json.dumps(sorted(r)))',
    ),
    (job) => {
      const r = lastJson<string[]>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(r.length === 1 && r[0] === 'lo', `interfaces: ${r.join(', ')}`)
    },
  ),

  single(
    'seccomp.namespaces',
    "no new namespace of any kind (unshare, setns, clone's and clone3's CLONE_NEW* flags), threads still start, and a process that tried for a user namespace holds no capability",
    py(`${SYSCALLS}
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x00020000, 0x40000000, 17
def clone3(flags):
    args = ctypes.create_string_buffer(struct.pack("8Q", flags, 0, 0, 0, SIGCHLD, 0, 0, 0))
    return forked(sys("clone3", ctypes.addressof(args), 64))
out = {"seccomp": status("Seccomp")}
out["unshare(NEWUSER)"] = in_child(lambda: ok(sys("unshare", CLONE_NEWUSER)))
out["unshare(NEWNS)"] = in_child(lambda: ok(sys("unshare", CLONE_NEWNS)))
out["unshare(NEWNET)"] = in_child(lambda: ok(sys("unshare", CLONE_NEWNET)))
out["setns(net)"] = in_child(lambda: ok(sys("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0)))
out["clone(NEWUSER)"] = in_child(lambda: forked(sys("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)))
out["clone3(NEWUSER)"] = in_child(lambda: clone3(CLONE_NEWUSER))
out["clone3(no flags)"] = in_child(lambda: clone3(0))
import threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
out["threads"] = "ok"
tried, caps = in_child(lambda: [ok(sys("unshare", CLONE_NEWUSER)), status("CapEff")])
out["child unshare(NEWUSER)"] = tried
out["child CapEff"] = caps
print(json.dumps(out))`),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const calls = Object.entries(r).filter(([k]) => !['seccomp', 'threads', 'child CapEff'].includes(k))
      return verdict(
        r.seccomp === '2' &&
          calls.every(([, v]) => refused(v)) &&
          r.threads === 'ok' &&
          /^0+$/.test(r['child CapEff'] ?? ''),
        listing(r),
      )
    },
  ),

  single(
    'seccomp.raw-sockets',
    'raw and packet sockets are refused, and so they stay after an attempt at a user namespace; TCP, UDP and Unix sockets work',
    py(`${SYSCALLS}
import socket
def sock(family, type_, proto=0):
    try:
        socket.socket(family, type_, proto).close(); return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = {}
out["AF_PACKET SOCK_RAW"] = sock(17, socket.SOCK_RAW, 0x0300)
out["AF_PACKET SOCK_DGRAM"] = sock(17, socket.SOCK_DGRAM, 0x0300)
out["AF_INET SOCK_RAW"] = sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
out["AF_INET6 SOCK_RAW"] = sock(socket.AF_INET6, socket.SOCK_RAW, 58)
out["AF_INET SOCK_PACKET"] = sock(socket.AF_INET, 10, 0x0300)
out["AF_PACKET SOCK_RAW after unshare(NEWUSER|NEWNET)"] = in_child(lambda: [ok(sys("unshare", 0x10000000 | 0x40000000)), sock(17, socket.SOCK_RAW, 0x0300)][1])
allowed = {"AF_INET SOCK_STREAM": sock(socket.AF_INET, socket.SOCK_STREAM), "AF_INET6 SOCK_DGRAM": sock(socket.AF_INET6, socket.SOCK_DGRAM), "AF_UNIX SOCK_STREAM": sock(socket.AF_UNIX, socket.SOCK_STREAM)}
print(json.dumps({"refused": out, "allowed": allowed}))`),
    (job) => {
      const r = lastJson<{ refused: Record<string, string>; allowed: Record<string, string> }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const pass = Object.values(r.refused).every(refused) && Object.values(r.allowed).every((v) => v === 'ok')
      return verdict(pass, `${listing(r.refused)}; still allowed: ${listing(r.allowed)}`)
    },
  ),

  single(
    'seccomp.kernel-interfaces',
    "keyrings, bpf, perf events, userfaultfd, io_uring, mounts, chroot, kexec, modules, file handles, other processes' memory and clearing the kernel log are refused",
    py(`${SYSCALLS}
calls = {
  "keyctl": ("keyctl", 0, -3, 0), "add_key": ("add_key", 0, 0, 0, 0, -3), "request_key": ("request_key", 0, 0, 0, 0),
  "bpf": ("bpf", 0, 0, 0), "perf_event_open": ("perf_event_open", 0, 0, -1, -1, 0), "userfaultfd": ("userfaultfd", 0),
  "io_uring_setup": ("io_uring_setup", 1, 0), "mount": ("mount", 0, 0, 0, 0, 0), "umount2": ("umount2", 0, 0),
  "pivot_root": ("pivot_root", 0, 0), "chroot": ("chroot", 0), "kexec_load": ("kexec_load", 0, 0, 0, 0),
  "init_module": ("init_module", 0, 0, 0), "open_by_handle_at": ("open_by_handle_at", -100, 0, 0),
  "process_vm_readv": ("process_vm_readv", 1, 0, 0, 0, 0, 0), "syslog(CLEAR)": ("syslog", 5, 0, 0),
}
print(json.dumps({k: ok(sys(*v)) for k, v in calls.items()}))`),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(Object.values(r).every(refused), listing(r))
    },
  ),

  single(
    'seccomp.ptrace',
    'a program traces its own child that asked to be traced, but cannot attach to or seize another process, trace system calls or seccomp events',
    py(`${SYSCALLS}
TRACEME, CONT, ATTACH, SYSCALL, SETOPTIONS, SEIZE = 0, 7, 16, 24, 0x4200, 0x4206
out = {}
pid = os.fork()
if pid == 0:
    sys("ptrace", TRACEME, 0, 0, 0)
    os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(7)
_, st = os.waitpid(pid, 0)
out["child stopped for its tracer"] = os.WIFSTOPPED(st)
out["PTRACE_SYSCALL"] = ok(sys("ptrace", SYSCALL, pid, 0, 0))
out["PTRACE_SETOPTIONS(TRACESECCOMP)"] = ok(sys("ptrace", SETOPTIONS, pid, 0, 0x80))
out["PTRACE_SETOPTIONS(TRACESYSGOOD)"] = ok(sys("ptrace", SETOPTIONS, pid, 0, 0x1))
out["PTRACE_CONT"] = ok(sys("ptrace", CONT, pid, 0, 0))
_, st = os.waitpid(pid, 0)
out["child exit"] = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -1
other = os.fork()
if other == 0:
    time.sleep(30); os._exit(0)
out["PTRACE_ATTACH"] = ok(sys("ptrace", ATTACH, other, 0, 0))
out["PTRACE_SEIZE"] = ok(sys("ptrace", SEIZE, other, 0, 0))
os.kill(other, signal.SIGKILL); os.waitpid(other, 0)
print(json.dumps(out))`),
    (job) => {
      const r = lastJson<Record<string, unknown>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const denied = ['PTRACE_SYSCALL', 'PTRACE_SETOPTIONS(TRACESECCOMP)', 'PTRACE_ATTACH', 'PTRACE_SEIZE'].every((k) =>
        refused(r[k]),
      )
      const traced =
        r['child stopped for its tracer'] === true &&
        r['PTRACE_SETOPTIONS(TRACESYSGOOD)'] === 'ok' &&
        r.PTRACE_CONT === 'ok' &&
        r['child exit'] === 7
      return verdict(denied && traced, listing(r))
    },
  ),

  single(
    'secrets.shadow',
    '/etc/shadow cannot be read',
    py(
      'import json\ntry:\n    open("/etc/shadow").read(); r = "read"\nexcept OSError as e:\n    r = f"errno {e.errno}: {e.strerror}"\nprint(json.dumps({"r": r}))',
    ),
    (job) => {
      const r = lastJson<{ r: string }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(r.r.startsWith('errno 13:') || r.r.startsWith('errno 2:'), `open(/etc/shadow): ${r.r}`)
    },
  ),

  single(
    'secrets.environment',
    'no worker or cluster environment reaches the program (Redis URL, API keys, service account)',
    py(`import os, json, glob
leaks = [k for k in os.environ if k.startswith(("REDIS", "AIRLOCK", "KUBERNETES", "NODE_OPTIONS", "AWS_", "GOOGLE_"))]
for f in glob.glob("/proc/*/environ"):
    try:
        data = open(f, "rb").read()
        if b"redis://" in data or b"AIRLOCK_" in data: leaks.append(f)
    except OSError: pass
tokens = [p for p in ["/var/run/secrets/kubernetes.io/serviceaccount/token", "/run/secrets/kubernetes.io/serviceaccount/token"] if os.path.exists(p)]
print(json.dumps({"leaks": leaks, "tokens": tokens, "env": sorted(os.environ)}))`),
    (job) => {
      const r = lastJson<{ leaks: string[]; tokens: string[]; env: string[] }>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      return verdict(
        r.leaks.length === 0 && r.tokens.length === 0,
        `leaks: ${r.leaks.join(', ') || 'none'}; service account tokens: ${r.tokens.join(', ') || 'none'}; env: ${r.env.join(' ')}`,
      )
    },
  ),

  single(
    'secrets.host-processes',
    'no host process is visible in /proc',
    py(`import os, json
procs = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try: procs[p] = open(f"/proc/{p}/comm").read().strip()
        except OSError: pass
print(json.dumps(procs))`),
    (job) => {
      const r = lastJson<Record<string, string>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const names = Object.values(r)
      // The program, and on Kubernetes the launcher that caps its output in the
      // sandbox: its shell, a subshell and a head/cat reader per stream.
      const foreign = names.filter((n) => !['python3', 'sh', 'head', 'cat'].includes(n))
      return verdict(
        foreign.length === 0 && names.length <= 5,
        `visible processes: ${Object.entries(r)
          .map(([p, n]) => `${p}:${n}`)
          .join(' ')}`,
      )
    },
  ),

  single(
    'secrets.host-files',
    "host home directories, Airlock's state and the host's root are not visible",
    py(`import os, json
seen = {}
for p in ["/root", "/home", "/run/airlock", "/var/lib/airlock", "/var/lib/redis", "/var/run/docker.sock", "/run/containerd"]:
    try:
        seen[p] = sorted(os.listdir(p))[:5] if os.path.isdir(p) else ("exists" if os.path.exists(p) else "absent")
    except OSError as e:
        seen[p] = f"errno {e.errno}"
print(json.dumps(seen))`),
    (job) => {
      const r = lastJson<Record<string, unknown>>(job)
      if (job.status !== 'succeeded' || !r) return unexpected(job)
      const exposed = Object.entries(r).filter(
        ([, v]) =>
          !(v === 'absent' || (Array.isArray(v) && v.length === 0) || (typeof v === 'string' && v.startsWith('errno'))),
      )
      return verdict(
        exposed.length === 0,
        Object.entries(r)
          .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
          .join('; '),
      )
    },
  ),

  {
    name: 'jobs.cross-visibility',
    claim: "two jobs running at once cannot see each other's files or processes",
    async run(client) {
      const marker = `airlock-marker-${Math.random().toString(36).slice(2)}`
      const { id: firstId } = await client.jobs.create({
        runtime: 'bash',
        source: `echo secret > /workspace/${marker}; echo secret > /tmp/${marker}; echo ready; exec -a ${marker} sleep 120`,
        limits: { timeoutMs: 150_000, cpus: 0.5 },
      })
      try {
        // The second job starts once the first holds its files and process, however
        // long its sandbox took to start; the first is cancelled when the second is done.
        for await (const event of client.jobs.stream(firstId)) {
          if (event.type === 'log' ? event.data.includes('ready') : event.type !== 'status') break
        }
        const second = await client.run(py(findMarker(marker), { cpus: 0.5 }))
        const overlapped = (await client.jobs.get(firstId)).status === 'running'
        const r = lastJson<{ found: string[] }>(second)
        if (second.status !== 'succeeded' || !r) return unexpected(second)
        return verdict(
          r.found.length === 0 && overlapped,
          `found: ${r.found.join(', ') || 'nothing'}; ran while the other job ran: ${overlapped}`,
        )
      } finally {
        await client.jobs.cancel(firstId).catch(() => undefined)
      }
    },
  },

  {
    name: 'jobs.previous-job',
    claim: 'a job sees nothing of the job that ran before it: no file, no process (a warm sandbox serves one job)',
    async run(client) {
      const marker = `airlock-marker-${Math.random().toString(36).slice(2)}`
      // The first job leaves what it can: files in the workspace and /tmp, and a
      // process of its own session that outlives its program.
      const first = await client.run(
        py(`import os
open("/workspace/${marker}", "w").write("secret")
open("/tmp/${marker}", "w").write("secret")
if os.fork() == 0:
    # A session of its own, holding none of the job's output pipes: it outlives the
    # program, not the program's output.
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execvp("sleep", ["${marker}", "60"])
print("left")`),
      )
      if (first.status !== 'succeeded') return unexpected(first)
      const second = await client.run(py(findMarker(marker)))
      const r = lastJson<{ found: string[] }>(second)
      if (second.status !== 'succeeded' || !r) return unexpected(second)
      const how = (j: Job) => j.sandboxStart ?? 'unrecorded'
      return verdict(
        r.found.length === 0,
        `found: ${r.found.join(', ') || 'nothing'}; the jobs started ${how(first)} and ${how(second)}`,
      )
    },
  },

  single(
    'isolation.record',
    'the job record states how it was isolated',
    { runtime: 'bash', source: 'true' },
    (job) => {
      const i = job.isolation
      if (!i) return verdict(false, 'no isolation recorded')
      const pass =
        i.technology === 'gvisor' &&
        i.network === 'none' &&
        i.readOnlyRoot &&
        i.uid !== 0 &&
        i.capabilities.length === 0 &&
        /^airlock\/sandbox-[0-9a-f]{12}\.json$/.test(i.seccomp ?? '')
      return verdict(
        pass,
        `${i.technology} (${i.runtime} ${i.version}, ${i.platform}), network ${i.network}, read-only root ${i.readOnlyRoot}, uid ${i.uid}, capabilities ${i.capabilities.length ? i.capabilities.join(',') : 'none'}, seccomp ${i.seccomp ?? 'none'}`,
      )
    },
  ),
]
