#!/usr/bin/env bash
# Builds OCI image archives for the single-node cluster without a registry or a
# Docker engine, and caches them in /var/cache/airlock/oci:
#   - each sandbox image named on the command line (python, bash, node, ...): the
#     root filesystem sandbox-images/build.sh makes, as one layer, with the
#     settings of its Dockerfile (user 10001, /workspace, PATH);
#   - the pod sandbox ("pause") image: Kubernetes' own pause.c from the
#     k8s.io/kubernetes module (from the Go module proxy), compiled static.
# An archive is rebuilt only when what it is made from changes. Prints one line
# per image: NAME ARCHIVE.
#
#   images.sh pause python bash
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${AIRLOCK_OCI_CACHE:-/var/cache/airlock/oci}"
images_dir="${AIRLOCK_IMAGES_DIR:-/var/lib/airlock/images}"
kube_version="${AIRLOCK_KUBE_VERSION:-1.34.4}"
mkdir -p "$cache"
command -v umoci >/dev/null || { echo "umoci is not installed (apt-get install -y umoci)" >&2; exit 1; }

# oci_archive NAME KEY ROOTFS_DIR USER WORKDIR ENTRYPOINT: the archive for NAME,
# rebuilt when KEY (what it was made from) changes.
oci_archive() {
  local name="$1" key="$2" rootfs="$3" user="$4" workdir="$5" entrypoint="$6"
  local out="$cache/$name.tar"
  if [[ -f $out && -f $cache/$name.key && "$(cat "$cache/$name.key")" == "$key" ]]; then echo "$name $out"; return; fi
  local work; work="$(mktemp -d)"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:latest"
  # One layer with the whole root filesystem, owned as it is on disk.
  umoci insert --image "$work/oci:latest" "$rootfs" / >/dev/null
  local args=(--image "$work/oci:latest" --config.user "$user" --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env LANG=C.UTF-8
    --author airlock --created 2000-01-01T00:00:00Z --history.created 2000-01-01T00:00:00Z)
  [[ -n $workdir ]] && args+=(--config.workingdir "$workdir")
  [[ -n $entrypoint ]] && args+=(--config.entrypoint "$entrypoint")
  umoci config "${args[@]}"
  umoci gc --layout "$work/oci"
  tar -C "$work/oci" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  echo "$key" > "$cache/$name.key"
  rm -rf "$work"
  echo "$name $out"
}

for name in "$@"; do
  if [[ $name == pause ]]; then
    src="$(go env GOMODCACHE)/k8s.io/kubernetes@v${kube_version}/build/pause/linux/pause.c"
    # Downloading the module alone needs no build (and the binaries may be cached without it).
    [[ -f $src ]] || (cd / && GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@v${kube_version}")
    [[ -f $src ]] || { echo "pause.c not found at $src" >&2; exit 1; }
    key="$(sha256sum "$src" "$0" | sha256sum | cut -c1-16)"
    work="$(mktemp -d)"
    mkdir -p "$work/rootfs"
    gcc -Os -static -DVERSION="v${kube_version}-airlock" -o "$work/rootfs/pause" "$src"
    oci_archive pause "$key" "$work/rootfs" 65535:65535 "" /pause
    rm -rf "$work"
  else
    [[ -d $root/sandbox-images/$name ]] || { echo "no sandbox image definition sandbox-images/$name" >&2; exit 1; }
    bash "$root/sandbox-images/build.sh" "$name" "$images_dir" >&2
    key="$(sha256sum "$images_dir/$name/manifest.json" "$0" | sha256sum | cut -c1-16)"
    oci_archive "$name" "$key" "$images_dir/$name/rootfs" 10001:10001 /workspace ""
  fi
done
