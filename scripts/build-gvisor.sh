#!/usr/bin/env bash
# Builds gVisor from the gvisor.dev/gvisor Go module at a pinned version, caches it by
# that version, and installs it where Airlock's executors and containerd look:
#   /usr/local/bin/runsc                     the local executor's default AIRLOCK_RUNSC_PATH
#   /usr/local/bin/gvisor-bin/gvisor_sentry  runsc's sentry sidecar (see below)
#   /usr/local/bin/containerd-shim-runsc-v1  containerd's runtime_type io.containerd.runsc.v1
# A fresh machine needs only Go and the Go module proxy the go command is configured
# with (about 2 minutes here). Prints the version it installed.
#
# Static (CGO_ENABLED=0): runsc re-executes itself inside its own chroot, where a
# dynamically linked binary finds no loader ("fork/exec /proc/self/exe: no such file").
#
# Sidecars: this release looks for its helper binaries in gvisor-bin/ beside runsc
# and, when one is missing, falls back to running the sentry from runsc itself with a
# deprecation warning (the fallback goes away when the default policy becomes STRICT).
# The sentry sidecar is a main package of one command, built here from the module's
# own sentrycmd; the prewarmer sidecar is C and not in the Go module, so it is not
# built: without it runsc logs that start-up is slower, and the measured cost is in
# docs/benchmarks.md. test/e2e/gvisor-install.test.ts checks that runsc boots the
# sentry from the sidecar, so a pin that changes this is noticed.
#
# A node that withholds CAP_SYS_RESOURCE (this development machine does) cannot run
# the shim as released: it gives itself oom_score_adj -999 and stops when that is
# refused, where containerd's own shims carry on. For such nodes only, a variant that
# carries on too is built into $CACHE/node-test/ (from a copy of the module with
# that one line changed by a sed that must match, or the build fails);
# test/kube/node.sh uses it when the host lacks the capability. It is never
# installed for production nodes.
#
# Debian's runsc (/usr/bin/runsc) is left alone: AIRLOCK_RUNSC_PATH=/usr/bin/runsc
# selects it, and airlock bench compares against it.
set -euo pipefail
GVISOR_VERSION="${AIRLOCK_GVISOR_VERSION:-v0.0.0-20260905035102-160fafc42237}"
CACHE="${AIRLOCK_GVISOR_CACHE:-/var/cache/airlock/gvisor}/${GVISOR_VERSION}"
PREFIX="${AIRLOCK_GVISOR_PREFIX:-/usr/local/bin}"
BINARIES=(runsc gvisor_sentry containerd-shim-runsc-v1)

have_all() {
  for b in "${BINARIES[@]}"; do [[ -x "$CACHE/bin/$b" ]] || return 1; done
  [[ -x "$CACHE/node-test/containerd-shim-runsc-v1" ]]
}

if ! have_all; then
  command -v go >/dev/null || { echo "build-gvisor: Go is required to build gVisor (go not found)" >&2; exit 1; }
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  mkdir -p "$CACHE/bin"
  export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
  # The module says which Go it needs; fail with that rather than a compile error.
  gomod=$(go mod download -json "gvisor.dev/gvisor@${GVISOR_VERSION}" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  need=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  have=$(go env GOVERSION); have=${have#go}
  if [[ -n $need ]] && [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]]; then
    echo "build-gvisor: gvisor.dev/gvisor@${GVISOR_VERSION} needs Go $need; this machine has $have" >&2
    exit 1
  fi
  cd "$work"
  printf 'module airlock.local/gvisorbuild\n\ngo %s\n\nrequire gvisor.dev/gvisor %s\n' "$need" "$GVISOR_VERSION" > go.mod
  # The sentry sidecar: the `boot` command (and `umount`, which boot re-executes) alone.
  mkdir -p cmd/gvisor_sentry
  cat > cmd/gvisor_sentry/main.go <<'GO'
package main

import (
	"github.com/google/subcommands"

	"gvisor.dev/gvisor/runsc/cli"
	"gvisor.dev/gvisor/runsc/cmd/sentry/sentrycmd"
	"gvisor.dev/gvisor/runsc/cmd/util"
	"gvisor.dev/gvisor/runsc/gvisorbinaries"
)

// cli.Run checks, as a sidecar, that runsc that started it is of the same release.
func main() {
	cli.Run(&gvisorbinaries.GvisorSentry, map[util.SubCommand]string{
		new(sentrycmd.Boot):   "internal use only",
		new(sentrycmd.Umount): "internal use only",
	}, []subcommands.Command{})
}
GO
  go mod tidy >&2
  ldflags="-s -w -X gvisor.dev/gvisor/runsc/version.version=${GVISOR_VERSION}"
  for b in "${BINARIES[@]}"; do
    [[ -x "$CACHE/bin/$b" ]] && continue
    case $b in
      runsc) pkg=gvisor.dev/gvisor/runsc ;;
      gvisor_sentry) pkg=./cmd/gvisor_sentry ;;
      containerd-shim-runsc-v1) pkg=gvisor.dev/gvisor/shim ;;
    esac
    echo "build-gvisor: building $b ${GVISOR_VERSION}" >&2
    go build -trimpath -ldflags "$ldflags" -o "$CACHE/bin/$b.tmp" "$pkg"
    mv "$CACHE/bin/$b.tmp" "$CACHE/bin/$b"
  done
  if [[ ! -x "$CACHE/node-test/containerd-shim-runsc-v1" ]]; then
    # A copy of the module with the one file changed, in a module of its own that
    # replaces gvisor.dev/gvisor with it (the go command will not overlay its cache).
    cp -r "$(go list -m -f '{{.Dir}}' gvisor.dev/gvisor)" gvisor-node-test
    chmod -R u+w gvisor-node-test
    manager=gvisor-node-test/pkg/shim/v1/manager.go
    sed -i 's/if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {/if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil \&\& !os.IsPermission(err) {/' "$manager"
    grep -q 'err != nil && !os.IsPermission(err)' "$manager" || { echo "build-gvisor: the shim's OOM score call changed in ${GVISOR_VERSION}; update the node-test variant" >&2; exit 1; }
    mkdir -p node-test "$CACHE/node-test"
    cp go.mod go.sum node-test/
    (cd node-test && go mod edit -module airlock.local/gvisorbuild-node-test -replace "gvisor.dev/gvisor=../gvisor-node-test" \
      && echo "build-gvisor: building containerd-shim-runsc-v1 (node-test variant) ${GVISOR_VERSION}" >&2 \
      && go build -trimpath -ldflags "$ldflags" -o "$CACHE/node-test/containerd-shim-runsc-v1.tmp" gvisor.dev/gvisor/shim)
    mv "$CACHE/node-test/containerd-shim-runsc-v1.tmp" "$CACHE/node-test/containerd-shim-runsc-v1"
  fi
fi

# Install by copy, replacing whole files (a running sandbox keeps its old inode).
install_one() {
  local from=$1 to=$2
  cmp -s "$from" "$to" 2>/dev/null && return 0
  mkdir -p "$(dirname "$to")"
  cp "$from" "$to.tmp.$$" && chmod 755 "$to.tmp.$$" && mv "$to.tmp.$$" "$to"
}
install_one "$CACHE/bin/runsc" "$PREFIX/runsc"
install_one "$CACHE/bin/gvisor_sentry" "$PREFIX/gvisor-bin/gvisor_sentry"
install_one "$CACHE/bin/containerd-shim-runsc-v1" "$PREFIX/containerd-shim-runsc-v1"
echo "$GVISOR_VERSION"
