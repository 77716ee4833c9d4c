#!/bin/bash
# The whole test suite: installs what is missing (scripts/setup.sh), type-checks, lints,
# then runs every test against the real Redis and real gVisor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent typecheck
# Lint and format (biome.json): fails on a lint error or a file the formatter would change.
npm run --silent lint
# The kubernetes executor is tested against a real control plane built from the
# k8s.io/kubernetes Go module; cached, so only a fresh machine pays for the build.
bash test/kube/build.sh >/dev/null
# docker-compose.yml is validated with Debian's docker-compose (no engine needed);
# airlock bench compares gVisor with runc; its HTML report is rendered by Chromium;
# the one-node cluster (test/kube/cluster.sh) runs pods with containerd, Debian's
# CNI plugins, and images made with umoci; a test builds a library a job preloads with
# gcc. Each: a file it installs, its package.
for need in /usr/bin/docker-compose:docker-compose /usr/sbin/runc:runc /usr/bin/chromium:chromium \
  /usr/bin/containerd:containerd /usr/lib/cni/bridge:containernetworking-plugins /usr/bin/umoci:umoci \
  /usr/bin/gcc:gcc; do
  [[ -e ${need%%:*} ]] && continue
  pkg="${need#*:}"
  apt-get install -y -qq "$pkg" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
done
# The cluster's images (pause and every sandbox image), cached like the binaries.
bash test/kube/images.sh pause python bash node c ml-python >/dev/null
# The deploy manifests are linted with checkov and kube-score (pinned, cached).
bash scripts/deploy-linters.sh >/dev/null
# The Python SDK's tests need httpx, websockets and pytest (a cached venv).
AIRLOCK_PYTHON="$(bash scripts/python-sdk-env.sh)"
# The API contract's outside tools: Schemathesis and openapi-python-client (pinned, cached).
AIRLOCK_API_TOOLS_PYTHON="$(bash scripts/api-tools-env.sh)"
# The Judge0 adapter's test drives it with the official Judge0 Python client (pinned, cached).
AIRLOCK_JUDGE0_PYTHON="$(bash scripts/judge0-client-env.sh)"
export AIRLOCK_PYTHON AIRLOCK_API_TOOLS_PYTHON AIRLOCK_JUDGE0_PYTHON
# A failing run repeats its failures last: CI keeps only the tail of what a run prints, and
# there the coverage table would hide which test failed and why.
mkdir -p .tap
status=0
npx tap 2>&1 | tee .tap/run.log || status=$?
if ((status != 0)); then
  echo "---- the run failed (exit ${status}); its failing tests, each with what tap said of it:"
  awk '/^[ \t]*not ok /{n=12} /^[ \t]*\.\.\.$/{if (n>0) print; n=0} n>0{print; n--}' .tap/run.log |
    cut -c1-240 | head -n 90 || true
  echo "---- the files that failed:"
  grep -E '^not ok ' .tap/run.log || echo "(none: tap itself failed; see above)"
fi
exit "$status"
