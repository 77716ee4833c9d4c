#!/bin/sh
# Prints the runtime versions of this image as JSON; runs inside the root filesystem.
set -eu
# From the JDK's release file: java itself finds its libraries through /proc, which the
# build's chroot does not have.
. /usr/lib/jvm/java-17-openjdk-amd64/release
printf '{"java":"%s"}\n' "$JAVA_VERSION"
