#!/usr/bin/env bash
# Fetches etcd 3.5 (Debian 13 "trixie"'s etcd-server and etcd-client packages) beside Debian 12's
# etcd 3.4, without installing it, and prints the directory holding its `etcd` and `etcdctl`:
#
#   CALSEG_ETCD_BIN_DIR=$(scripts/etcd35.sh) cargo test -p calseg-tests --test e2e -- rbac::
#
# The packages come from the Debian archive this machine's apt is configured with, through
# `apt-get download` with an apt state of its own under target/etcd35/ (its own source list,
# package lists and cache; a `trixie main` source signed by the Debian archive keyring), and are
# unpacked with `dpkg-deb -x` under target/etcd35/root/. Nothing is installed and the system's apt
# state is never touched. Idempotent: a complete unpack is reused, and so are downloaded .debs.
# Fails unless the unpacked `etcd --version` says 3.5. Messages go to stderr; stdout has only the
# directory. See /work/shared/testing.md, "etcd 3.5 beside 3.4, without installing it".
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
base=$here/target/etcd35
root=$base/root
bin=$root/usr/bin
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "etcd35: $*" >&2; }
fail() { echo "etcd35: $*" >&2; exit 1; }

# The etcd the unpacked tree holds is 3.5 (and runs here: it needs glibc >= 2.34).
check_version() {
  local out
  out=$("$bin/etcd" --version 2>&1) || { echo "$out" >&2; return 1; }
  grep -Eq '^etcd Version: 3\.5\.' <<<"$out" || { echo "$out" >&2; return 1; }
  "$bin/etcdctl" version >/dev/null 2>&1 || return 1
}

if [ -x "$bin/etcd" ] && [ -x "$bin/etcdctl" ] && check_version 2>/dev/null; then
  echo "$bin"
  exit 0
fi

for tool in apt-get dpkg-deb flock; do
  command -v "$tool" >/dev/null || fail "\`$tool\` is missing (apt-get install -y apt dpkg util-linux)"
done
[ -f "$keyring" ] || fail "$keyring is missing: apt-get install -y debian-archive-keyring"


mkdir -p "$base/lists/partial" "$base/cache/archives/partial" "$base/debs"
# One fetch at a time (others may build and test in the same tree).
exec 9>"$base/.lock"
flock -w 600 9 || fail "another run holds $base/.lock for 10 minutes; giving up"

# The run that held the lock may have finished the job.
if [ -x "$bin/etcd" ] && [ -x "$bin/etcdctl" ] && check_version 2>/dev/null; then
  echo "$bin"
  exit 0
fi

uri=$(bash "$here/scripts/debian-archive.sh")
echo "deb [signed-by=$keyring] $uri trixie main" >"$base/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$base/sources.list"
  -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$base/lists"
  -o "Dir::Cache=$base/cache"
  # apt's download sandbox user (_apt) may not reach a checkout under /root.
  -o APT::Sandbox::User=root
)

if ! ls "$base"/debs/etcd-server_*.deb "$base"/debs/etcd-client_*.deb >/dev/null 2>&1; then
  say "fetching trixie's etcd-server and etcd-client from $uri (apt state under $base)"
  apt-get "${apt_opts[@]}" -qq update >"$base/apt.log" 2>&1 ||
    { tail -n 20 "$base/apt.log" >&2; fail "apt-get update of the trixie source failed; log: $base/apt.log"; }
  (cd "$base/debs" && apt-get "${apt_opts[@]}" -qq download etcd-server etcd-client) >>"$base/apt.log" 2>&1 ||
    { tail -n 20 "$base/apt.log" >&2; fail "apt-get download etcd-server etcd-client failed; log: $base/apt.log"; }
fi

say "unpacking $(cd "$base/debs" && echo etcd-server_*.deb etcd-client_*.deb) under $root"
rm -rf "$root.tmp"
mkdir -p "$root.tmp"
for deb in "$base"/debs/etcd-server_*.deb "$base"/debs/etcd-client_*.deb; do
  dpkg-deb -x "$deb" "$root.tmp"
done
rm -rf "$root"
mv "$root.tmp" "$root"
check_version || fail "$bin/etcd is not a working etcd 3.5 (see above); remove $base and run again"
say "$("$bin/etcd" --version | head -n1) in $bin"
echo "$bin"
