#!/usr/bin/env bash
# A Python environment with the Python SDK's dependencies and pytest, for its tests.
# Cached by the dependency list; the SDK itself is used from the checkout
# (PYTHONPATH=sdk-python), so the tests always run the code under test.
# Prints the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=("httpx>=0.27,<1" "websockets>=13,<16" "pytest>=7")
key="$(printf '%s\n' "${deps[@]}" | sha256sum | cut -c1-12)"
venv="${AIRLOCK_PYTHON_CACHE:-/var/cache/airlock/python}/sdk-$key"
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import httpx, websockets, pytest' 2>/dev/null; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv separately.
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "${deps[@]}" >&2
fi
echo "$venv/bin/python"
