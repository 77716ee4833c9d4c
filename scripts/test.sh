#!/bin/bash
# The whole test suite: installs what is missing (scripts/setup.sh), type-checks,
# then runs every test against the real Redis and real gVisor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent typecheck
# The kubernetes executor is tested against a real control plane built from the
# k8s.io/kubernetes Go module; cached, so only a fresh machine pays for the build.
bash test/kube/build.sh >/dev/null
# docker-compose.yml is validated with Debian's docker-compose (no engine needed);
# airlock bench compares gVisor with runc; its HTML report is rendered by Chromium.
for tool in docker-compose runc chromium; do
  command -v "$tool" >/dev/null && continue
  apt-get install -y -qq "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done
# The Python SDK's tests need httpx, websockets and pytest (a cached venv).
AIRLOCK_PYTHON="$(bash scripts/python-sdk-env.sh)"
export AIRLOCK_PYTHON
npx tap
