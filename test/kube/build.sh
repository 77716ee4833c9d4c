#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the executor tests run against
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, and kubectl
# whose kustomize renders deploy/ offline) from the
# k8s.io/kubernetes Go module, and etcd from the etcd server module at the
# version that release itself requires, and caches them by version. A fresh
# machine needs only Go and the Go module proxy. Prints the bin directory.
set -euo pipefail
KUBE_VERSION="${AIRLOCK_KUBE_VERSION:-1.34.4}"
CACHE="${AIRLOCK_KUBE_CACHE:-/var/cache/airlock/kube}/v${KUBE_VERSION}"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd)

have_all() { for b in "${BINARIES[@]}"; do [[ -x "$CACHE/bin/$b" ]] || return 1; done; }
if have_all; then echo "$CACHE/bin"; exit 0; fi

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$CACHE/bin"
staging_version="0.${KUBE_VERSION#1.}"
# The kubernetes module points its staging modules at ./staging paths that do
# not exist in the published module; pin each to its matching release instead.
# The module's go.mod, through the go command: it follows whatever module proxy this
# machine is configured with (GOPROXY), and checks the file against the checksum database.
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
kube_mod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
[[ -f $kube_mod ]] || { echo "build.sh: go mod download found no go.mod for k8s.io/kubernetes@v${KUBE_VERSION}" >&2; exit 1; }
staging=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kube_mod")
{
  echo "module airlock.local/kubebuild"
  echo
  echo "go 1.23"
  echo
  echo "require k8s.io/kubernetes v${KUBE_VERSION}"
  echo
  for m in $staging; do echo "replace $m => $m v${staging_version}"; done
} > "$work/go.mod"
cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
# Debian's etcd (3.4) is older than this Kubernetes supports; etcd's own main
# package is one call into etcdmain, at the version k8s.io/kubernetes requires.
mkdir -p "$work/cmd/etcd"
cat > "$work/cmd/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cd "$work"
go mod tidy -e >/dev/null 2>&1 || true
go get "k8s.io/kubernetes@v${KUBE_VERSION}" >&2
for b in "${BINARIES[@]}"; do
  [[ -x "$CACHE/bin/$b" ]] && continue
  pkg="k8s.io/kubernetes/cmd/$b"; [[ $b == etcd ]] && pkg=./cmd/etcd
  echo "building $b v${KUBE_VERSION}" >&2
  CGO_ENABLED=0 go build -tags tools -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)" -o "$CACHE/bin/$b.tmp" "$pkg"
  mv "$CACHE/bin/$b.tmp" "$CACHE/bin/$b"
done
echo "$CACHE/bin"
