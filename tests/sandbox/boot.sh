#!/bin/sh
# Boots a real systemd as PID 1 of the calling PID namespace, on an overlay of the real root
# filesystem (see ../shared/testing.md). Run as the first process of
#   unshare --pid --fork --kill-child --mount --propagation private --uts [--net] /bin/sh boot.sh \
#     SCRATCH HOSTNAME CGROUP TARGET
# SCRATCH: an empty directory (a tmpfs goes there, inside this mount namespace only); HOSTNAME:
# the host's name; CGROUP: a cgroup name of its own in each hierarchy; TARGET: a directory
# bound read-only at its own path inside (the workspace's build output). Writes land in the
# tmpfs; the real root is never changed. Used by the test harness (tests/src/sandbox.rs) and
# by scripts/demo.sh.
set -eu
S="$1/root"
HOST="$2"
CGROUP="$3"
T="$4"
mkdir -p "$S"
mount -t tmpfs -o mode=0755 calseg-sandbox "$S"
mkdir -p "$S/upper" "$S/work" "$S/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$S/merged"
M="$S/merged"
mount -t proc proc "$M/proc"
mount --rbind /sys "$M/sys"
mount --rbind /dev "$M/dev"
mount -t tmpfs -o mode=0755 tmpfs "$M/run"
mount -t tmpfs -o mode=1777 tmpfs "$M/tmp"
# The workspace's build output (the binaries and packages under test), read-only at the same
# path: a checkout under /tmp or /run would otherwise be hidden by the fresh tmpfs above.
if [ -d "$T" ]; then
  mkdir -p "$M$T"
  mount --bind "$T" "$M$T"
  mount -o remount,bind,ro "$M$T"
fi
echo "$HOST" > "$M/etc/hostname"
hostname "$HOST"
# A cgroup of its own in each hierarchy (v1 name=systemd, v2 unified), so that systemd
# manages that subtree and several sandboxes never share one.
for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if [ -f "$root/cgroup.procs" ]; then
    mkdir -p "$root/$CGROUP"
    echo $$ > "$root/$CGROUP/cgroup.procs"
  fi
done
export container=other
exec chroot "$M" /lib/systemd/systemd --system --unit=basic.target
