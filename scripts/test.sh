#!/usr/bin/env bash
# Runs calseg's whole test suite: unit tests and the end-to-end tests against a real etcd and
# real (sandboxed) systemd. Installs missing prerequisites first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "calseg: the test suite boots systemd in namespace sandboxes and must run as root" >&2
  exit 1
fi
bash scripts/prereqs.sh

# The end-to-end tests run the real binaries: build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
