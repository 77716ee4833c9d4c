#!/usr/bin/env bash
# This machine as a one-node Kubernetes cluster that runs sandbox pods under gVisor:
# the control plane (control-plane.sh), a real node (node.sh: containerd with the
# runsc and runc handlers, CNI, kubelet), and the sandbox part of
# deploy/kubernetes/overlays/single-node (namespace, deny-all NetworkPolicy,
# quota, RuntimeClasses gvisor and runc). Airlock itself runs on the host with the
# kubernetes executor, using the settings written to DIR/airlock.env.
#
#   cluster.sh up DIR     start everything (binaries and images built or reused)
#   cluster.sh down DIR   stop everything and remove DIR
#
# For example, the service and a load test on Kubernetes:
#   bash test/kube/cluster.sh up /tmp/airlock-cluster
#   (set -a; . /tmp/airlock-cluster/airlock.env; set +a; airlock serve)
#   airlock bench --key ...
set -euo pipefail
cmd="${1:?usage: cluster.sh up|down DIR}"
dir="$(realpath -m "${2:?usage: cluster.sh up|down DIR}")"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

down() {
  bash "$here/node.sh" stop "$dir" || true
  bash "$here/control-plane.sh" stop "$dir" || true
}
case "$cmd" in
  down) down; rm -rf "$dir"; exit 0 ;;
  up) ;;
  *) echo "unknown command $cmd" >&2; exit 64 ;;
esac

mkdir -p "$dir"
trap 'down' ERR
# The log API may then return a container's stdout and stderr apart, so jobs keep
# them apart as under the local executor (alpha in 1.34; API server and kubelet both).
export AIRLOCK_KUBE_FEATURE_GATES="${AIRLOCK_KUBE_FEATURE_GATES-PodLogsQuerySplitStreams=true}"
AIRLOCK_KUBE_REAL_NODE=1 bash "$here/control-plane.sh" start "$dir" >/dev/null
bash "$here/node.sh" start "$dir" >/dev/null
bin="$(bash "$here/build.sh")"
"$bin/kubectl" --kubeconfig "$dir/kubeconfig" apply -k "$root/deploy/kubernetes/overlays/single-node" -l airlock.dev/component=sandbox >/dev/null
# Pod admission needs the namespace's default ServiceAccount, which its controller
# creates a moment after the namespace.
for _ in $(seq 100); do
  "$bin/kubectl" --kubeconfig "$dir/kubeconfig" -n airlock-sandbox get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.1
done
{
  echo "AIRLOCK_EXECUTOR=kubernetes"
  echo "AIRLOCK_K8S_KUBECONFIG=$dir/kubeconfig"
  echo "AIRLOCK_K8S_NAMESPACE=airlock-sandbox"
  echo "AIRLOCK_K8S_RUNTIME_CLASS=gvisor"
  cat "$dir/images.env"
} > "$dir/airlock.env"
echo "$dir/airlock.env"
