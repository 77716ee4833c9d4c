#!/usr/bin/env bash
# A Python environment with the API contract's outside tools, pinned: Schemathesis (the
# API fuzzer) and openapi-python-client (a client generator). test/contract uses them.
# Prints the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/python-env.sh api-tools "schemathesis==4.32.5" "openapi-python-client==0.29.1"
