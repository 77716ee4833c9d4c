#!/bin/bash
# Installs what Airlock needs on a Debian 12 machine (as root) and builds it:
# Debian packages (redis-server, runsc, debootstrap), gVisor built from its Go module
# (scripts/build-gvisor.sh), a running Redis, node modules, the compiled server and
# the sandbox image. Safe to run again: it only does what is
# missing. With --start it then runs the service (API + worker + local gVisor
# executor) in the foreground.
#
# AIRLOCK_REDIS_MAXMEMORY (default 1gb) caps the Redis that setup starts, or a local
# one it finds without a cap. Airlock needs maxmemory-policy noeviction: a full Redis
# must refuse writes (the API answers 503 with a code), never drop jobs or keys.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: installing packages, managing cgroups and runsc sandboxes need it"

# --- Node.js: the machine's own; Debian 12's nodejs (18) is too old for us.
command -v node >/dev/null || die "Node.js 20 or newer is required (node not found)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is required (found $(node --version))"

# --- Debian packages
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v runsc >/dev/null || missing+=(runsc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v pgrep >/dev/null || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- gVisor: the pinned release, built from its Go module (cached by version).
# Debian's runsc (installed above) stays for comparison: AIRLOCK_RUNSC_PATH=/usr/bin/runsc.
log "gVisor $(bash scripts/build-gvisor.sh)"

# --- Redis: start a local one if REDIS_URL (default local) does not answer.
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
redis_maxmemory=${AIRLOCK_REDIS_MAXMEMORY:-1gb}
[[ $redis_maxmemory =~ ^[1-9][0-9]*([kmg]b?)?$ ]] || die "AIRLOCK_REDIS_MAXMEMORY must be a size such as 1gb or 768mb, got '$redis_maxmemory'"
redis() { redis-cli --no-auth-warning -u "$redis_url" "$@" 2>/dev/null; }
redis_is_local=false
case "$redis_url" in redis://127.0.0.1:*|redis://localhost:*) redis_is_local=true ;; esac
if ! redis ping >/dev/null; then
  $redis_is_local || die "Redis at $redis_url does not answer, and it is not local, so setup cannot start it"
  port=${redis_url##*:}; port=${port%%/*}
  log "starting redis-server on 127.0.0.1:$port (append-only file in /var/lib/redis, maxmemory $redis_maxmemory, noeviction)"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --appendonly yes \
    --maxmemory "$redis_maxmemory" --maxmemory-policy noeviction \
    --dir /var/lib/redis --logfile /var/log/redis/airlock-redis.log
  for _ in $(seq 1 50); do redis ping >/dev/null && break; sleep 0.1; done
  redis ping >/dev/null || die "redis-server did not start; see /var/log/redis/airlock-redis.log"
elif $redis_is_local; then
  # A Redis that was already there (Debian's redis-server service, say): cap it only
  # if it has no cap, so an operator's own maxmemory stands. CONFIG SET lasts until
  # that Redis restarts; its redis.conf keeps it for good.
  maxmemory=$(redis CONFIG GET maxmemory | sed -n 2p || true)
  policy=$(redis CONFIG GET maxmemory-policy | sed -n 2p || true)
  if [ -z "$maxmemory" ]; then
    log "warning: cannot read the configuration of the Redis at $redis_url (CONFIG refused); make sure it has maxmemory and maxmemory-policy noeviction"
  elif [ "$maxmemory" = 0 ]; then
    log "the Redis at $redis_url has no maxmemory: setting maxmemory $redis_maxmemory, noeviction (until it restarts; put both in its redis.conf to keep them)"
    [ "$(redis CONFIG SET maxmemory "$redis_maxmemory")" = OK ] && [ "$(redis CONFIG SET maxmemory-policy noeviction)" = OK ] \
      || die "could not set maxmemory on the Redis at $redis_url"
  elif [ "$policy" != noeviction ]; then
    log "warning: the Redis at $redis_url evicts keys when full (maxmemory-policy $policy); Airlock needs noeviction, or jobs and keys vanish silently"
  fi
fi

# --- Node modules and build
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci installs exactly what the lock says (it holds every platform's optional
  # packages, so it is the same lock on every machine) and never rewrites it.
  log "installing node modules (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "building"
npm run --silent build

# --- Sandbox images (cached: each rebuilt only when its definition changes): the
# interpreters' and the compiled runtimes' (c and cpp, java, go, rust), about a minute
# each the first time. AIRLOCK_SETUP_IMAGES names others (ml-python) or fewer.
for image in ${AIRLOCK_SETUP_IMAGES:-default c java go rust}; do
  bash sandbox-images/build.sh "$image"
done

# --- A key for local use, made once and kept out of git.
if [ ! -f .airlock/local.env ]; then
  mkdir -p .airlock
  printf 'AIRLOCK_API_KEYS=local:%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > .airlock/local.env
  chmod 600 .airlock/local.env
fi

log "ready"
if [ "${1:-}" = "--start" ]; then
  set -a
  # shellcheck disable=SC1091
  . .airlock/local.env
  set +a
  log "starting Airlock on port ${PORT:-8080}; tenant 'local', key: ${AIRLOCK_API_KEYS#local:}"
  log "web console: http://127.0.0.1:${PORT:-8080}/console/ (sign in with that key)"
  exec npm start --silent
fi
