#!/usr/bin/env bash
# Runs calseg's whole test suite: unit tests and the end-to-end tests against a real etcd and
# real (sandboxed) systemd. Installs missing prerequisites first. Run as root.
#
# The suite runs on the etcd the harness finds (Debian 12's 3.4 on PATH, or the directory in
# CALSEG_ETCD_BIN_DIR); then, when no arguments are given, the end-to-end tests that depend on
# etcd's behaviour run a second time on etcd 3.5, fetched beside 3.4 by scripts/etcd35.sh (never
# installed). Arguments go to the first `cargo test` only, and skip the second run (so does
# CALSEG_ETCD35=0).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "calseg: the test suite boots systemd in namespace sandboxes and must run as root" >&2
  exit 1
fi
bash scripts/prereqs.sh

# The end-to-end tests that talk to etcd's auth, members and watches: they run on etcd 3.5 too.
etcd35_modules=(rbac:: identity:: agent:: ha:: least_privilege:: replay:: etcd_limits:: etcd_release:: harness_etcd:: ca_rotation::)

# "etcd Version: 3.4.23" of the etcd in directory $1 (empty: PATH).
etcd_version() { "${1:+$1/}etcd" --version 2>/dev/null | head -n1; }

# The end-to-end tests run the real binaries: build them first.
cargo build --workspace --bins --locked
# The mixed-version tests run the previous release: build it now (once; cached under target/compat/).
started=$(date +%s)
cargo run -q --locked -p calseg-tests --bin calseg-previous-release >/dev/null
echo "calseg: the previous release is built ($(( $(date +%s) - started ))s)" >&2
echo "calseg: the whole suite, on $(etcd_version "${CALSEG_ETCD_BIN_DIR:-}")" >&2
cargo test --workspace --locked "$@"

if [ $# -gt 0 ] || [ "${CALSEG_ETCD35:-1}" = 0 ]; then
  echo "calseg: not running the etcd 3.5 pass (arguments given, or CALSEG_ETCD35=0)" >&2
  exit 0
fi
etcd35=$(bash scripts/etcd35.sh)
started=$(date +%s)
echo "calseg: ${etcd35_modules[*]} again, on $(etcd_version "$etcd35") ($etcd35)" >&2
CALSEG_ETCD_BIN_DIR=$etcd35 cargo test -p calseg-tests --test e2e --locked -- "${etcd35_modules[@]}"
echo "calseg: the etcd 3.5 pass took $(( $(date +%s) - started ))s" >&2
