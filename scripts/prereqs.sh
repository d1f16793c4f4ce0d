#!/usr/bin/env bash
# Installs what building and testing calseg needs on Debian, when it is missing. Idempotent.
# Run by scripts/test.sh, scripts/demo.sh and .ci/run; safe to run on its own as root.
#
# Each need is checked by what the build or a test really uses (a command, a header, a .proto
# file), not by a package name, so a package installed without its recommends (protobuf-compiler
# without libprotobuf-dev, say) is caught. scripts/fresh-machine.sh proves the list on a
# minimal Debian root: a need missing here fails there.
set -euo pipefail

# Rust toolchain first: nothing below helps without it.
min_rust=1.88
if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
  cat >&2 <<EOF
calseg: no Rust toolchain (cargo and rustc not on PATH). Install Rust $min_rust or newer with rustup:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . "\$HOME/.cargo/env"
EOF
  exit 1
fi
rust_version=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$min_rust" "${rust_version%%-*}" | sort -V | head -n1)" != "$min_rust" ]; then
  echo "calseg: rustc $rust_version is too old; calseg needs $min_rust or newer (\`rustup update stable\`)" >&2
  exit 1
fi

# What is checked -> the Debian package that provides it. A check is a command on PATH or an
# absolute path that must exist.
needs=(
  # Building: crates with build scripts link with cc; etcd-client's build runs protoc, which
  # needs the well-known .proto files (libprotobuf-dev, not pulled in without recommends).
  "cc gcc"
  "/usr/include/stdio.h libc6-dev"
  "protoc protobuf-compiler"
  "/usr/include/google/protobuf/descriptor.proto libprotobuf-dev"
  # A real etcd and its client (tests, demo).
  "etcd etcd-server"
  "etcdctl etcd-client"
  # Sandboxed hosts: a real systemd in namespaces, its D-Bus, veth links.
  "/lib/systemd/systemd systemd"
  "systemd-analyze systemd"
  "dbus-daemon dbus"
  "unshare util-linux"
  "setpriv util-linux"
  "nsenter util-linux"
  "ip iproute2"
  # `systemd-analyze verify` looks up the units' Documentation= man pages with man.
  "man man-db"
  # Fault-injection tests: an agent clock running behind (tests/tests/e2e/faults.rs).
  "faketime faketime"
  # The metrics tests check the server's scrape and the agent's textfile with
  # `promtool check metrics` (server/src/metrics, tests/tests/e2e/metrics_exposition.rs).
  "promtool prometheus"
  # ... and the OpenMetrics answer with the Prometheus Python client's strict parser.
  "/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py python3-prometheus-client"
  # The agent tests and the demo inspect certificates and keys with openssl.
  "openssl openssl"
  # The benchmark's manual baseline makes certificates as Calico's docs do (scripts/bench.sh).
  "cfssl golang-cfssl"
  # Packages (packaging/build.sh and its tests): strip, rpm to inspect the .rpm files,
  # dpkg-deb, and adduser/deluser for the server package's user.
  "strip binutils"
  "gzip gzip"
  "rpm rpm"
  "dpkg-deb dpkg"
  "adduser adduser"
  # scripts/deps.sh turns the advisory snapshot into the git repository cargo-deny reads.
  "git git"
)

missing=()
for need in "${needs[@]}"; do
  check=${need% *}
  package=${need##* }
  case "$check" in
    /*) [ -e "$check" ] && continue ;;
    *) command -v "$check" >/dev/null 2>&1 && continue ;;
  esac
  missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -ne 0 ]; then
    echo "calseg: missing Debian packages: $packages" >&2
    echo "calseg: run this as root, or install them: apt-get install -y --no-install-recommends $packages" >&2
    exit 1
  fi
  echo "calseg: installing missing Debian packages: $packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  if ! apt-get install -y -qq --no-install-recommends $packages >/tmp/calseg-prereqs-apt.log 2>&1; then
    tail -n 20 /tmp/calseg-prereqs-apt.log >&2
    echo "calseg: apt-get install failed (full log: /tmp/calseg-prereqs-apt.log)" >&2
    exit 1
  fi
  # Check again: a package that installed but did not bring what is needed is a bug here.
  for need in "${needs[@]}"; do
    check=${need% *}
    case "$check" in
      /*) [ -e "$check" ] || { echo "calseg: $check still missing after installing ${need##* }" >&2; exit 1; } ;;
      *) command -v "$check" >/dev/null 2>&1 || { echo "calseg: $check still missing after installing ${need##* }" >&2; exit 1; } ;;
    esac
  done
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
