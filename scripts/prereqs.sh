#!/usr/bin/env bash
# Installs what building and testing calseg needs on Debian, when it is missing. Idempotent.
# Run by scripts/test.sh, scripts/demo.sh and .ci/run; safe to run on its own as root.
set -euo pipefail

# command -> Debian package that provides it
declare -A needed=(
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [protoc]=protobuf-compiler
  [ip]=iproute2
  [dbus-daemon]=dbus
  [unshare]=util-linux
  [setpriv]=util-linux
  [nsenter]=util-linux
  [bash]=bash
  # Fault-injection tests: an agent clock running behind (tests/tests/e2e/faults.rs).
  [faketime]=faketime
  # The agent tests and the demo inspect certificates and keys with openssl.
  [openssl]=openssl
  # The benchmark's manual baseline makes certificates as Calico's docs do (scripts/bench.sh).
  [cfssl]=golang-cfssl
  # Packages (packaging/build.sh and its tests): strip, rpm to inspect the .rpm files,
  # dpkg-deb, and adduser/deluser for the server package's user.
  [strip]=binutils
  [gzip]=gzip
  [rpm]=rpm
  [dpkg-deb]=dpkg
  [adduser]=adduser
)
[ -x /lib/systemd/systemd ] || needed[/lib/systemd/systemd]=systemd

missing=()
for command in "${!needed[@]}"; do
  if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "$command" ]; then
    missing+=("${needed[$command]}")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "calseg: missing Debian packages: ${missing[*]}; run this as root so it can install them" >&2
    exit 1
  fi
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "calseg: installing missing Debian packages: $packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "calseg: cargo not found: install a stable Rust toolchain (1.88 or newer) with rustup" >&2
  exit 1
fi

# The packaging tools, from crates.io, once (compiling them takes a few minutes). Only the
# test suite and packaging need them: the demo runs this with CALSEG_NO_PACKAGING_TOOLS=1.
# (`cargo deb` finds them in $CARGO_HOME/bin even when that is not on PATH.)
[ "${CALSEG_NO_PACKAGING_TOOLS:-0}" = 1 ] && exit 0
for tool in deb generate-rpm; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "calseg: installing cargo-$tool with cargo install" >&2
    cargo install --locked --quiet "cargo-$tool"
  fi
done
