#!/bin/sh
# Runs inside the freshly bootstrapped root filesystem (chroot), as root.
set -eu

# The one identity jobs run as; the same uid/gid as the Kubernetes executor uses.
echo 'sandbox:x:10001:10001:Airlock sandbox:/workspace:/usr/sbin/nologin' >> /etc/passwd
echo 'sandbox:x:10001:' >> /etc/group
echo 'sandbox:!:19000::::::' >> /etc/shadow
mkdir -p /workspace /airlock/job
# runc gives a tmpfs the mode of the directory it covers; runsc uses the mount's own.
chmod 1777 /workspace

# No setuid or setgid programs: no_new_privs already makes them powerless, and
# an image without them stays safe if that ever changed.
find / -xdev -type f -perm /6000 -exec chmod ug-s {} +

# Package tooling is of no use in a read-only sandbox.
rm -rf /var/cache/apt/* /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
