#!/bin/bash
# Builds a sandbox image (a root filesystem) from its definition in this folder:
#   sandbox-images/build.sh [IMAGE] [IMAGES_DIR]
# The result lands in IMAGES_DIR/IMAGE/{rootfs,manifest.json}. A build is skipped
# when the installed image was made from the same definition (same hash), so CI
# pays for debootstrap once per machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${1:-default}
images_dir=${2:-${AIRLOCK_IMAGES_DIR:-/var/lib/airlock/images}}
def="$here/$image"
suite=bookworm

[ -f "$def/packages" ] || { echo "no image definition at $def" >&2; exit 1; }

# Images share the default image's setup (sandbox user, no setuid, no package caches)
# unless they bring their own.
setup="$def/setup.sh"
[ -f "$setup" ] || setup="$here/default/setup.sh"
hash=$(cat "$here/build.sh" "$setup" "$def"/* | sha256sum | cut -c1-16)
target="$images_dir/$image"
if [ -f "$target/manifest.json" ] && grep -q "\"definitionHash\":\"$hash\"" "$target/manifest.json"; then
  echo "sandbox image $image is up to date ($hash)"
  exit 0
fi

# Use the mirror this machine's apt already uses, so the build needs no other host.
mirror=${AIRLOCK_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'; \
             grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}') | grep -v security | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "cannot find a Debian mirror in /etc/apt; set AIRLOCK_DEBIAN_MIRROR" >&2; exit 1; }

command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 1; }

work="$images_dir/.build-$image-$$"
trap 'rm -rf "$work"' EXIT
rm -rf "$work"
mkdir -p "$work"
packages=$(grep -vE '^\s*(#|$)' "$def/packages" | paste -sd, -)
echo "building sandbox image $image from $suite ($packages); this takes a minute or two"
debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
cp "$setup" "$work/rootfs/tmp/setup.sh"
chroot "$work/rootfs" /bin/sh /tmp/setup.sh
cp "$def/versions.sh" "$work/rootfs/tmp/versions.sh"
versions=$(chroot "$work/rootfs" /bin/sh /tmp/versions.sh)
rm -f "$work/rootfs/tmp/setup.sh" "$work/rootfs/tmp/versions.sh"

printf '{"image":"%s","definitionHash":"%s","builtAt":"%s","versions":%s}\n' \
  "$image" "$hash" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$versions" > "$work/manifest.json"
rm -f "$work/debootstrap.log"

# Swap in the new image whole; a reader never sees half of one.
mkdir -p "$images_dir"
if [ -d "$target" ]; then mv "$target" "$images_dir/.old-$image-$$"; fi
mv "$work" "$target"
rm -rf "$images_dir/.old-$image-$$"
trap - EXIT
echo "sandbox image $image built: $(cat "$target/manifest.json")"
