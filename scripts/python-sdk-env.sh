#!/usr/bin/env bash
# A Python environment with the Python SDK's dependencies and pytest, for its tests.
# The SDK itself is used from the checkout (PYTHONPATH=sdk-python), so the tests always
# run the code under test. Prints the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/python-env.sh sdk "httpx>=0.27,<1" "websockets>=13,<16" "pytest>=7"
