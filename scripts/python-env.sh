#!/usr/bin/env bash
# A cached Python virtual environment: python-env.sh NAME REQUIREMENT...
# Keyed by the requirement list, so a changed pin makes a new one; prints its python.
set -euo pipefail
name="$1"
shift
key="$(printf '%s\n' "$@" | sha256sum | cut -c1-12)"
venv="${AIRLOCK_PYTHON_CACHE:-/var/cache/airlock/python}/$name-$key"
# The marker is written last: a venv whose install was cut short is made again.
if [[ ! -f $venv/.complete ]]; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv separately.
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
