#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
printf '{"python":"%s"}\n' "$(python3 -c 'import platform; print(platform.python_version())')"
