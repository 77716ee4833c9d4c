#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
# "go version go1.19.8 linux/amd64" -> 1.19.8
printf '{"go":"%s"}\n' "$(go version | sed -n 's/^go version go\([^ ]*\) .*/\1/p')"
