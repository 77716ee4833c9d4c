#!/bin/sh
# The "runsc" runtime handler's binary: containerd's runc shim (io.containerd.runc.v2)
# runs this as if it were runc. Debian's runsc ships without gVisor's own shim
# (containerd-shim-runsc-v1), so the runc shim drives runsc, which takes runc's
# command line.
#
# Two things differ from a plain `runsc`:
#  - gVisor's flags for this node: the ptrace platform (the only one that works
#    here), and no network at all inside the sandbox, whatever the pod's network
#    namespace and the cluster's NetworkPolicy enforcement do (defence in depth).
#  - Every container gets a sandbox of its own. Given CRI's annotations, runsc puts
#    a pod's containers into the pause container's sandbox, and then reports that
#    sandbox's pid for each of them; the runc shim watches the reported pid to learn
#    when a container exits, so it would never see the job's container end. Renaming
#    the annotations makes runsc treat each container as a pod of its own, which
#    costs one more idle sandbox per pod (the pause container's) and keeps exits
#    exact. gVisor's shim would share one sandbox.
#  - `kill` of a container whose sandbox has ended says "container not running",
#    the words the runc shim knows; runsc's own ("sandbox is not running") make
#    containerd retry the exit forever and the pod never finishes.
set -eu
RUNSC="${AIRLOCK_RUNSC:-/usr/bin/runsc}"

command=''
bundle=''
prev=''
for arg in "$@"; do
  case "$prev" in
    --bundle|-b) bundle="$arg" ;;
  esac
  case "$arg" in
    create|run|kill) [ -z "$command" ] && command="$arg" ;;
    --bundle=*) bundle="${arg#--bundle=}" ;;
  esac
  prev="$arg"
done

if [ "$command" = kill ]; then
  status=0
  out=$("$RUNSC" --platform=ptrace --network=none "$@" 2>&1) || status=$?
  case "$status:$out" in
    0:*) [ -z "$out" ] || printf '%s\n' "$out"; exit 0 ;;
    *"is not running"*) echo "container not running" >&2; exit 1 ;;
    *) printf '%s\n' "$out" >&2; exit "$status" ;;
  esac
fi
if [ -n "$command" ] && [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  sed -i \
    -e 's#"io\.kubernetes\.cri\.container-type"#"airlock.dev/cri.container-type"#' \
    -e 's#"io\.kubernetes\.cri\.sandbox-id"#"airlock.dev/cri.sandbox-id"#' \
    "$bundle/config.json"
fi
exec "$RUNSC" --platform=ptrace --network=none "$@"
