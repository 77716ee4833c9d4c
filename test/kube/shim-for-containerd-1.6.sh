#!/bin/sh
# containerd-shim-runsc-v1 for Debian's containerd (1.6) on the test node. The gVisor
# shim of the pinned release speaks containerd 2's start-up handshake: `start` prints
# its address as JSON ({"version":2,"address":"unix://...","protocol":"ttrpc"}), where
# containerd 1.6 reads the address alone and fails with "dial unix {...}: connect:
# invalid argument". The task API behind it (ttrpc, task v2) is the one 1.6 speaks,
# so only that line is rewritten. Every other call is the shim's own.
# AIRLOCK_RUNSC_SHIM (set by node.sh in containerd's environment) is the real shim.
set -eu
shim="${AIRLOCK_RUNSC_SHIM:?AIRLOCK_RUNSC_SHIM must name the real containerd-shim-runsc-v1}"
last=''
for arg in "$@"; do last="$arg"; done
if [ "$last" != start ]; then exec "$shim" "$@"; fi
out=$("$shim" "$@")
case "$out" in
  '{'*) printf '%s' "$out" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p' ;;
  *) printf '%s' "$out" ;;
esac
