#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
printf '{"c":"%s","cpp":"%s"}\n' "$(gcc -dumpfullversion)" "$(g++ -dumpfullversion)"
