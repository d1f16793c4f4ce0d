#!/usr/bin/env bash
# Prints the Debian archive URI this machine's apt uses: the first non-security `URIs:` of the
# deb822 sources, else the first non-security `deb` line of sources.list, else deb.debian.org.
# Used by scripts/fresh-machine.sh (debootstrap) and scripts/etcd35.sh (apt-get download).
set -euo pipefail
uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -v -- -security | head -n1 || true)
[ -n "$uri" ] || uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- -security | head -n1 || true)
echo "${uri:-http://deb.debian.org/debian}"
