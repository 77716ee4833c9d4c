#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
py=$(python3 -c 'import platform; print(platform.python_version())')
node=$(node -e 'process.stdout.write(process.versions.node)')
bash=$(bash -c 'echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"')
printf '{"python":"%s","node":"%s","bash":"%s"}\n' "$py" "$node" "$bash"
