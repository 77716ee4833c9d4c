#!/bin/bash
# The whole test suite: installs what is missing (scripts/setup.sh), type-checks,
# then runs every test against the real Redis and real gVisor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent typecheck
npx tap
