#!/usr/bin/env bash
# A real node for the control plane of control-plane.sh: Debian's containerd with
# two runtime handlers (runsc: gVisor through gVisor's own containerd shim,
# containerd-shim-runsc-v1 from scripts/build-gvisor.sh, one sandbox per pod;
# runc: plain containers, for benchmarks only), Debian's CNI plugins, and the
# kubelet built with the control plane. Everything lives in DIR
# (state, sockets, logs); nothing is installed system-wide.
#
#   node.sh start DIR   after `control-plane.sh start DIR`: starts containerd,
#                       imports the images (images.sh), starts the kubelet and
#                       waits until the node is Ready; writes DIR/images.env
#   node.sh stop DIR    stops the kubelet and containerd, removes their
#                       containers, mounts and network devices
#
# Settings: AIRLOCK_KUBE_NODE_IMAGES (sandbox images to import; all of the
# catalog's: python bash node c ml-python),
# AIRLOCK_KUBELET_PORT (10250), AIRLOCK_KUBE_FEATURE_GATES (the kubelet's
# featureGates, as `Name=true,Other=false`).
set -euo pipefail
cmd="${1:?usage: node.sh start|stop DIR}"
dir="$(realpath -m "${2:?usage: node.sh start|stop DIR}")"
here="$(cd "$(dirname "$0")" && pwd)"
node_name=airlock-node-1
# The node's address: on a bridge of its own, because the kubelet refuses loopback
# and this machine's other address faces the outside.
node_if=airlock-node0
node_ip=10.254.254.1
# Pods' network. No gateway and no masquerading: a pod reaches only other pods,
# never the node or the outside. gVisor pods have no network at all (--network=none).
pod_bridge=airlock-cni0
pod_subnet=10.254.0.0/24
ctr_sock="$dir/containerd/containerd.sock"
# The kubelet's cgroupRoot: every pod's cgroup goes below this one of Airlock's own,
# not the host's /kubepods, and stop removes it whole.
kube_cgroup=airlock-kube-node
# Each mounted hierarchy: the v2 root, or every v1 controller's mount (not its aliases).
cgroup_hierarchies() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then echo /sys/fs/cgroup; return; fi
  for h in /sys/fs/cgroup/*; do [[ -d $h && ! -L $h ]] && echo "$h"; done
}

stop() {
  if [[ -f $dir/kubelet.pid ]]; then
    kill "$(cat "$dir/kubelet.pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$dir/kubelet.pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/kubelet.pid")" 2>/dev/null || true
    rm -f "$dir/kubelet.pid"
  fi
  if [[ -f $dir/containerd.pid ]]; then
    # Containers first: their shims and sandboxes outlive containerd otherwise.
    if [[ -S $ctr_sock ]]; then
      for c in $(ctr -a "$ctr_sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$ctr_sock" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
      done
      sleep 0.5
      for c in $(ctr -a "$ctr_sock" -n k8s.io containers ls -q 2>/dev/null); do
        ctr -a "$ctr_sock" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
        ctr -a "$ctr_sock" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
      done
    fi
    kill "$(cat "$dir/containerd.pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/containerd.pid")" 2>/dev/null || true
    rm -f "$dir/containerd.pid"
  fi
  # Shims (and their sandboxes) that lost their containers: only ours, by socket path.
  pkill -9 -f "containerd-shim-runc-v2 .*-address $ctr_sock" 2>/dev/null || true
  pkill -9 -f "containerd-shim-runsc-v1 .*-address $ctr_sock" 2>/dev/null || true
  # Sandboxes and gofers of the shim's runsc, by their state root (their shim may be gone).
  pkill -9 -f -- "--root=$dir/containerd/runsc" 2>/dev/null || true
  # Mounts the kubelet and containerd made under DIR, deepest first.
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # Pod network namespaces that containerd had no chance to tear down: those with
  # an address in our pod subnet.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do
    if ip -n "$ns" -4 -o addr show 2>/dev/null | grep -q "inet ${pod_subnet%.*}\."; then ip netns delete "$ns" 2>/dev/null || true; fi
  done
  ip link del "$pod_bridge" 2>/dev/null || true
  ip link del "$node_if" 2>/dev/null || true
  # The pods' cgroups, deepest first (their processes are gone with the shims).
  for h in $(cgroup_hierarchies); do
    [[ -d $h/$kube_cgroup ]] && find "$h/$kube_cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
if [[ $cmd == stop ]]; then stop; exit 0; fi
[[ $cmd == start ]] || { echo "unknown command $cmd" >&2; exit 64; }
[[ -f $dir/kubeconfig && -f $dir/pki/ca.crt ]] || { echo "no control plane in $dir: run control-plane.sh start $dir first" >&2; exit 1; }
for tool in containerd ctr runc /usr/lib/cni/bridge umoci; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y containerd runc containernetworking-plugins umoci" >&2; exit 1; }
done
# gVisor: the pinned release and its shim (built, or found cached, by build-gvisor.sh).
gvisor_version="$(bash "$here/../../scripts/build-gvisor.sh")"
gvisor_bin="${AIRLOCK_GVISOR_PREFIX:-/usr/local/bin}"
for tool in runsc containerd-shim-runsc-v1; do
  [[ -x $gvisor_bin/$tool ]] || { echo "missing $gvisor_bin/$tool after scripts/build-gvisor.sh" >&2; exit 1; }
done
# The shim as released stops when it cannot give itself oom_score_adj -999, which
# needs CAP_SYS_RESOURCE; where this host withholds it (this development machine
# does), containerd finds build-gvisor.sh's node-test variant first, which carries on
# as containerd's own shims do.
shim="$gvisor_bin/containerd-shim-runsc-v1"
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if (( (16#$cap_eff >> 24 & 1) == 0 )); then
  shim="${AIRLOCK_GVISOR_CACHE:-/var/cache/airlock/gvisor}/$gvisor_version/node-test/containerd-shim-runsc-v1"
fi
# One node per machine: its address, bridge and kubelet port are fixed.
# (Only when the address is ours: otherwise the connection would leave the machine.)
if ip -4 -o addr show dev "$node_if" 2>/dev/null | grep -q "inet $node_ip/" \
  && (exec 3<>"/dev/tcp/$node_ip/${AIRLOCK_KUBELET_PORT:-10250}") 2>/dev/null; then
  echo "a kubelet already listens on $node_ip:${AIRLOCK_KUBELET_PORT:-10250}: another node.sh node is up; stop it first (cluster.sh down DIR)" >&2
  exit 1
fi
bin="$(bash "$here/build.sh")"
mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/kubelet" "$dir/logs" "$dir/bin"
trap 'stop' ERR

ip link add "$node_if" type bridge 2>/dev/null || true
ip addr replace "$node_ip/32" dev "$node_if"
ip link set "$node_if" up

# The shim's runsc settings (its ConfigPath): runsc_config holds runsc's own flags.
# No network inside the sandbox at all, whatever the pod's network namespace and the
# cluster's NetworkPolicy enforcement do (defence in depth): sandbox pods need none.
# oci-seccomp: runsc enforces the pod's seccomp profile inside the sandbox, on the
# job's own system calls (without it runsc ignores the profile).
cat > "$dir/containerd/runsc.toml" <<EOF
binary_name = "$gvisor_bin/runsc"
root = "$dir/containerd/runsc"
[runsc_config]
  platform = "${AIRLOCK_NODE_RUNSC_PLATFORM:-systrap}"
  network = "none"
  oci-seccomp = "true"
EOF
# The sandbox pods' Localhost seccomp profile (named by its hash), where the kubelet
# looks for it: <root-dir>/seccomp/.
mkdir -p "$dir/kubelet/root/seccomp/airlock"
install -m 0644 "$here/../../deploy/kubernetes/overlays/self-managed/node/seccomp/airlock/"sandbox-*.json "$dir/kubelet/root/seccomp/airlock/"
cat > "$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$ctr_sock"
[ttrpc]
  address = "$dir/containerd/containerd-ttrpc.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "airlock.local/pause:latest"
  # This machine withholds CAP_SYS_RESOURCE, so the negative oom_score_adj the
  # kubelet gives pause and Guaranteed containers cannot be written: clamp it to
  # containerd's own (0).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    # Plain containers: the comparison runtime of benchmarks (RuntimeClass runc).
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$dir/containerd/runc"
    # gVisor (RuntimeClass gvisor, handler runsc): containerd runs the shim named by
    # runtime_type (containerd-shim-runsc-v1, found on its PATH), which puts a pod's
    # containers, pause included, into one sandbox.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$dir/containerd/runsc.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
cat > "$dir/cni/net.d/10-airlock.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "airlock-pods",
  "plugins": [
    { "type": "bridge", "bridge": "$pod_bridge", "isGateway": false, "ipMasq": false, "hairpinMode": false,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$pod_subnet" }]], "dataDir": "$dir/cni/ipam" } },
    { "type": "loopback" }
  ]
}
EOF

launch() { # name, then the command
  local name="$1"; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/$name.pid"
}
# containerd looks the shim up on its PATH by name; before 2.0 it needs the wrapper
# that speaks its older start-up handshake (shim-for-containerd-1.6.sh).
if [[ "$(containerd --version | awk '{print $3}')" == 1.* ]]; then
  install -m 0755 "$here/shim-for-containerd-1.6.sh" "$dir/bin/containerd-shim-runsc-v1"
else
  ln -sf "$shim" "$dir/bin/containerd-shim-runsc-v1"
fi
AIRLOCK_RUNSC_SHIM="$shim" PATH="$dir/bin:$PATH" launch containerd containerd --config "$dir/containerd/config.toml"
for _ in $(seq 100); do ctr -a "$ctr_sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$ctr_sock" version >/dev/null || { echo "containerd did not start:" >&2; tail -20 "$dir/logs/containerd.log" >&2; exit 1; }

# Images: imported under their name and their digest, so pods can name them by
# digest (the executor requires it) and never pull.
: > "$dir/images.env"
k8s_images=()
# shellcheck disable=SC2086
while read -r name archive; do
  ref="airlock.local/$name"
  ctr -a "$ctr_sock" -n k8s.io images import --base-name "$ref" --digests "$archive" >/dev/null
  digest="$(ctr -a "$ctr_sock" -n k8s.io images ls -q | sed -n "s#^$ref@\(sha256:[0-9a-f]*\)\$#\1#p" | head -1)"
  [[ -n $digest ]] || { echo "importing $archive left no $ref@sha256 image" >&2; exit 1; }
  [[ $name == pause ]] || k8s_images+=("$name=$ref@$digest")
done < <(bash "$here/images.sh" pause ${AIRLOCK_KUBE_NODE_IMAGES:-python bash node c ml-python})
echo "AIRLOCK_K8S_IMAGES=$(IFS=,; echo "${k8s_images[*]}")" > "$dir/images.env"

# The kubelet wants its cgroupRoot to exist in every hierarchy it uses.
for h in $(cgroup_hierarchies); do mkdir -p "$h/$kube_cgroup"; done
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  # v2: let the kubelet's children have the controllers the root hands down.
  sed 's/\([a-z_]\+\)/+\1/g' /sys/fs/cgroup/cgroup.subtree_control > "/sys/fs/cgroup/$kube_cgroup/cgroup.subtree_control" 2>/dev/null || true
fi
cat > "$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: ${AIRLOCK_KUBELET_PORT:-10250}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $dir/pki/ca.crt }
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$ctr_sock
cgroupDriver: cgroupfs
cgroupRoot: /$kube_cgroup
# This machine has cgroup v1; kubelet 1.35 drops it.
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
# Our images are imported, not pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1% }
serializeImagePulls: false
featureGates: { $(sed 's/=/: /g; s/,/, /g' <<<"${AIRLOCK_KUBE_FEATURE_GATES:-}") }
registerNode: true
registerWithTaints:
  - { key: airlock.dev/pool, value: gvisor, effect: NoSchedule }
EOF
launch kubelet "$bin/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$dir/kubeconfig" \
  --root-dir "$dir/kubelet/root" --cert-dir "$dir/kubelet/pki" \
  --hostname-override "$node_name" --node-ip "$node_ip" --node-labels airlock.dev/pool=gvisor --v 1

kubectl() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
for _ in $(seq 600); do
  if [[ "$(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; then ready=1; break; fi
  kill -0 "$(cat "$dir/kubelet.pid")" 2>/dev/null || break
  sleep 0.2
done
if [[ -z ${ready:-} ]]; then echo "node $node_name did not become Ready; last kubelet log lines:" >&2; tail -30 "$dir/logs/kubelet.log" >&2; exit 1; fi
echo "$node_name"
