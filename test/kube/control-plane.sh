#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the executor tests: etcd,
# kube-apiserver (TLS with generated certificates, RBAC, the default admission
# chain including PodSecurity and RuntimeClass), kube-controller-manager (the
# Job, garbage-collector, TTL and service-account controllers) and
# kube-scheduler. No kubelet: node.sh adds a real one, or tests register nodes.
#
#   control-plane.sh start DIR   builds or reuses the binaries, starts, waits
#                                until ready, writes DIR/kubeconfig
#   control-plane.sh stop DIR    stops everything started in DIR
#
# Ports come from AIRLOCK_KUBE_API_PORT and AIRLOCK_KUBE_ETCD_PORT (the
# etcd peer port is the client port + 1). AIRLOCK_KUBE_FEATURE_GATES (for
# example PodLogsQuerySplitStreams=true) goes to the API server's --feature-gates.
set -euo pipefail
cmd="${1:?usage: control-plane.sh start|stop DIR}"
dir="${2:?usage: control-plane.sh start|stop DIR}"
here="$(cd "$(dirname "$0")" && pwd)"

stop() {
  for p in scheduler controller-manager apiserver etcd; do
    [[ -f "$dir/$p.pid" ]] || continue
    kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  for p in scheduler controller-manager apiserver etcd; do
    [[ -f "$dir/$p.pid" ]] || continue
    pid="$(cat "$dir/$p.pid")"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$p.pid"
  done
}
if [[ $cmd == stop ]]; then stop; exit 0; fi
[[ $cmd == start ]] || { echo "unknown command $cmd" >&2; exit 64; }

api_port="${AIRLOCK_KUBE_API_PORT:-16443}"
etcd_port="${AIRLOCK_KUBE_ETCD_PORT:-12379}"
bin="$(bash "$here/build.sh")"
mkdir -p "$dir/pki" "$dir/etcd-data" "$dir/logs"
pki="$dir/pki"

# Certificates: one CA; the API server's serving certificate for loopback; one
# client certificate in system:masters shared by the admin (tests, executor),
# the controller manager and the scheduler. Good enough for a test cluster;
# production clusters bring their own.
if [[ ! -f $pki/admin.crt ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 30 -subj "/CN=airlock-test-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/apiserver.crt" -days 30 -extfile "$pki/apiserver.ext" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$pki/admin.key" -out "$pki/admin.csr" -subj "/O=system:masters/CN=airlock-admin" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$pki/client.ext"
  openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/admin.crt" -days 30 -extfile "$pki/client.ext" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi

b64() { base64 -w0 < "$1"; }
cat > "$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: airlock-test
  cluster:
    server: https://127.0.0.1:${api_port}
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: airlock-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: airlock-test
  context: { cluster: airlock-test, user: airlock-admin }
current-context: airlock-test
EOF

launch() { # name, then the command
  local name="$1"; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/$name.pid"
}
# Stop what was started if we fail before it is ready.
trap 'stop' ERR

launch etcd "$bin/etcd" --data-dir "$dir/etcd-data" --name airlock-test \
  --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-cluster "airlock-test=http://127.0.0.1:$((etcd_port + 1))" \
  --unsafe-no-fsync --quota-backend-bytes 1073741824 --log-level warn

# Kubelet endpoints are served by the tests' node harness with a self-signed
# certificate; the API server does not verify kubelets unless told to.
launch apiserver "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:${etcd_port}" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --endpoint-reconciler-type none \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --authorization-mode RBAC \
  --kubelet-preferred-address-types InternalIP \
  --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
  --allow-privileged=false --profiling=false \
  --cert-dir "$dir/pki/generated" --v 1 \
  ${AIRLOCK_KUBE_FEATURE_GATES:+--feature-gates "$AIRLOCK_KUBE_FEATURE_GATES"}

for _ in $(seq 600); do
  if curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:${api_port}/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null || break
  sleep 0.2
done
if [[ -z ${ready:-} ]]; then echo "kube-apiserver did not become ready; last log lines:" >&2; tail -20 "$dir/logs/apiserver.log" >&2; exit 1; fi

# The node-lifecycle controller only with a real kubelet (AIRLOCK_KUBE_REAL_NODE=1,
# as cluster.sh sets): the tests' harness nodes renew no leases, and it would taint
# them unreachable and evict their pods.
controllers=job-controller,garbage-collector-controller,ttl-after-finished-controller,serviceaccount-controller,namespace-controller,pod-garbage-collector-controller
[[ ${AIRLOCK_KUBE_REAL_NODE:-} == 1 ]] && controllers+=,node-lifecycle-controller
launch controller-manager "$bin/kube-controller-manager" \
  --kubeconfig "$dir/kubeconfig" --leader-elect=false --secure-port 0 \
  --controllers "$controllers" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" --v 1
launch scheduler "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" --leader-elect=false --secure-port 0 --v 1

for p in controller-manager scheduler; do
  sleep 0.2
  kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null || { echo "$p exited:" >&2; tail -20 "$dir/logs/$p.log" >&2; exit 1; }
done
echo "$dir/kubeconfig"
