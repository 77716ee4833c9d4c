#!/usr/bin/env bash
# The outside linters the deploy manifests are held to, pinned and cached:
#   checkov     from PyPI, in a venv of its own (/var/cache/airlock/lint/checkov-VERSION)
#   kube-score  built from its Go module (/var/cache/airlock/lint/kube-score-VERSION)
# Needs only the package registries pip and the go command are configured with.
# Prints two lines: `checkov PATH` and `kube-score PATH`.
set -euo pipefail
CHECKOV_VERSION=3.3.30
KUBE_SCORE_VERSION=v1.20.0
cache="${AIRLOCK_LINT_CACHE:-/var/cache/airlock/lint}"
mkdir -p "$cache"

venv="$cache/checkov-$CHECKOV_VERSION"
if [[ ! -x $venv/bin/checkov ]] || ! "$venv/bin/checkov" --version >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >/dev/null 2>&1 || { apt-get install -y -qq python3-venv >/dev/null; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
fi

score="$cache/kube-score-$KUBE_SCORE_VERSION"
if [[ ! -x $score/kube-score ]]; then
  rm -rf "$score"
  GOBIN="$score" CGO_ENABLED=0 go install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" >&2
fi
echo "checkov $venv/bin/checkov"
echo "kube-score $score/kube-score"
