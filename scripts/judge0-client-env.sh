#!/usr/bin/env bash
# A Python environment with the official Judge0 client (judge0-python, on PyPI as judge0)
# and its two dependencies, pinned: test/e2e/judge0.test.ts drives the Judge0 adapter with
# it, unchanged. Prints the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/python-env.sh judge0-client "judge0==0.0.8" "httpx==0.29.0" "pydantic==2.14.4"
