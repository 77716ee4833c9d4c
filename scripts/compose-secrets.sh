#!/bin/bash
# Makes the secret docker-compose.yml reads, once: .airlock/redis-password, the Redis
# password (48 hex characters: nothing in it needs escaping, in a URL or in Redis's
# configuration). Safe to run again: an existing password is kept, since a
# running stack uses it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1mcompose-secrets:\033[0m %s\n' "$*"; }

file=.airlock/redis-password
mkdir -p .airlock
# The directory keeps other users of this machine out. The file itself has to be
# readable by all: Compose bind-mounts it as it is, and the API reads it as uid 1000.
chmod 700 .airlock
# A `docker-compose up` before this script leaves an empty directory in its place.
[ -d "$file" ] && rmdir "$file"
if [ ! -s "$file" ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file"
  chmod 644 "$file"
  log "made $file"
fi
