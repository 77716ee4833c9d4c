#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
printf '{"ml-python":"%s"}\n' "$(python3 -c 'import platform, numpy, pandas, sklearn, matplotlib; print(platform.python_version())')"
