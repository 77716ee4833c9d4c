#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
# "rustc 1.63.0" -> 1.63.0
printf '{"rust":"%s"}\n' "$(rustc --version | sed -n 's/^rustc \([^ ]*\).*/\1/p')"
