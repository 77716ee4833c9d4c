#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
printf '{"node":"%s"}\n' "$(node -e 'process.stdout.write(process.versions.node)')"
