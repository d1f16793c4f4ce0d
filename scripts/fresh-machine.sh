#!/usr/bin/env bash
# The newcomer's check: runs COMMAND (default ./scripts/demo.sh) in a clone of this checkout
# inside a minimal Debian 12 root, as a fresh machine with only a Rust toolchain would.
#
#   scripts/fresh-machine.sh [COMMAND...]     e.g. scripts/fresh-machine.sh ./scripts/test.sh
#
# The root is made with `debootstrap --variant=minbase bookworm` from the Debian archive this
# machine is configured with, cached pristine under target/fresh-machine/ between runs, and
# copied for each run. It is lent nothing from this machine but the Rust toolchain (~/.rustup
# read-only, plus copies of rustup's proxies) and the TLS trust settings (the CA bundle and the
# SSL_CERT_FILE-style variables), so a missing install step in the project's scripts fails here.
# The clone holds HEAD plus the tracked changes of the work tree (untracked files are left out).
#
# Every mount lives in a private mount namespace of a process that dies with this script
# (SIGINT, SIGTERM or SIGKILL alike), so no mount outlives a run; run directories a killed run
# left behind are removed by the next run, after checking that nothing is mounted under them.
# Environment: FRESH_KEEP=1 keeps the run's root; FRESH_SUITE (default bookworm).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
base=$here/target/fresh-machine
suite=${FRESH_SUITE:-bookworm}

fail() { echo "fresh-machine: $*" >&2; exit 1; }
say() { echo "fresh-machine: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Inside: PID 1 of a new PID namespace with a private mount namespace (see the end of the file).
if [ "${1:-}" = --inside ]; then
  shift
  root=$1; shift
  mount --bind "$root" "$root"              # the sandboxed systemd's overlay needs a mount point
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"; mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  mkdir -p "$root/root/.rustup"
  mount --bind "$rustup_home" "$root/root/.rustup"
  mount -o remount,bind,ro "$root/root/.rustup"
  [ -n "${trust_bundle:-}" ] && mount --bind -o ro "$trust_bundle" "$root/etc/ssl/host-trust/ca-certificates.crt"
  # shellcheck disable=SC2086 # $trust_env is a list of NAME=VALUE words without spaces
  exec chroot "$root" /usr/bin/env -i \
    HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo RUSTUP_AUTO_INSTALL=0 \
    RUSTUP_TOOLCHAIN="$rustup_toolchain" $trust_env \
    /bin/bash -c 'cd /src && exec "$@"' fresh-machine "$@"
fi

# ---------------------------------------------------------------------------------------------
# Outside.
[ "$(id -u)" -eq 0 ] || fail "run as root: it makes a Debian root with debootstrap and mounts into it"
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
[ -d "$rustup_home/toolchains" ] && [ -x "$cargo_bin/rustup" ] ||
  fail "no rustup toolchain under $rustup_home and $cargo_bin: install one with rustup (https://rustup.rs), e.g. \`rustup toolchain install stable\`"
rustup_toolchain=$("$cargo_bin/rustup" show active-toolchain 2>/dev/null | awk '{print $1; exit}')
[ -n "$rustup_toolchain" ] || fail "rustup has no active toolchain: run \`rustup default stable\`"
command -v git >/dev/null || fail "git is missing: apt-get install -y git"
[ $# -gt 0 ] || set -- ./scripts/demo.sh

# Removes run directories a killed run left behind; refuses to delete through a mount.
clean_stale() {
  local dir mounted
  for dir in "$base"/run.*; do
    [ -d "$dir" ] || continue
    local pid=${dir##*.}
    if [ -d "/proc/$pid" ] && grep -q fresh-machine "/proc/$pid/cmdline" 2>/dev/null; then
      continue                                # another run, still going
    fi
    # Mounts under it, deepest first (only possible if something mounted there from outside).
    mounted=$(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r)
    for m in $mounted; do umount -l "$m" 2>/dev/null || true; done
    if awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {found=1} END {exit !found}' /proc/self/mounts; then
      fail "$dir still has mounts; not removing it (see /proc/mounts)"
    fi
    say "removing $dir, left by an earlier run"
    rm -rf --one-file-system "$dir"
  done
}


mkdir -p "$base"
clean_stale

pristine=$base/pristine-$suite
if [ ! -f "$pristine/.calseg-complete" ]; then
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  uri=$(bash "$here/scripts/debian-archive.sh")
  say "making a minimal Debian root ($suite, minbase) from $uri; cached as $pristine"
  rm -rf --one-file-system "$pristine.tmp"
  started=$(date +%s)
  debootstrap --variant=minbase "$suite" "$pristine.tmp" "$uri" >"$base/debootstrap.log" 2>&1 ||
    { tail -n 20 "$base/debootstrap.log" >&2; fail "debootstrap failed; its log: $base/debootstrap.log"; }
  touch "$pristine.tmp/.calseg-complete"
  mv "$pristine.tmp" "$pristine"
  say "root made in $(( $(date +%s) - started ))s"
fi

run=$base/run.$$
inner=
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [ -n "$inner" ] && kill -0 "$inner" 2>/dev/null; then
    kill -KILL "$inner" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if awk -v d="$run" '$2 == d || index($2, d "/") == 1 {found=1} END {exit !found}' /proc/self/mounts; then
    say "mounts remain under $run; not removing it"
  elif [ "${FRESH_KEEP:-0}" = 1 ]; then
    say "kept $run"
  else
    rm -rf --one-file-system "$run"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp -a "$pristine" "$run"
rm -f "$run/.calseg-complete"
# The network configuration a fresh machine has (debootstrap's own copy may be stale).
cp -L /etc/resolv.conf "$run/etc/resolv.conf" 2>/dev/null || true
# rustup's proxies only; the toolchains stay in the read-only ~/.rustup.
mkdir -p "$run/root/.cargo/bin"
for proxy in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver rustup; do
  [ -e "$cargo_bin/$proxy" ] && cp "$cargo_bin/$proxy" "$run/root/.cargo/bin/$proxy"
done

# TLS trust: the host's CA bundle at its own path, and every variable that names it.
trust_bundle=
for candidate in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$candidate" ] && [ -f "$candidate" ]; then trust_bundle=$(readlink -f "$candidate"); break; fi
done
trust_env=
if [ -n "$trust_bundle" ]; then
  inside_bundle=/etc/ssl/host-trust/ca-certificates.crt
  # The mount point of the bundle, bound read-only inside.
  mkdir -p "$run/etc/ssl/host-trust"
  touch "$run/etc/ssl/host-trust/ca-certificates.crt"
  trust_env="SSL_CERT_FILE=$inside_bundle CARGO_HTTP_CAINFO=$inside_bundle"
  while IFS='=' read -r name value; do
    case "$name" in SSL_CERT_FILE | CARGO_HTTP_CAINFO) continue ;; esac
    if [ -n "$value" ] && [ "$(readlink -f "$value" 2>/dev/null)" = "$trust_bundle" ]; then
      trust_env="$trust_env $name=$inside_bundle"
    fi
  done < <(env | grep -E '^[A-Z0-9_]*(SSL|CERT|CA_BUNDLE|CAINFO|_CA)[A-Z0-9_]*=' || true)
  [ -n "${SSL_CERT_DIR:-}" ] && trust_env="$trust_env SSL_CERT_DIR=/etc/ssl/certs"
fi

# The checkout: HEAD, plus the work tree's tracked changes.
git clone -q --no-hardlinks "$here" "$run/src"
git -C "$here" diff HEAD --binary | git -C "$run/src" apply --allow-empty --whitespace=nowarn
if [ -n "$(git -C "$here" status --porcelain --untracked-files=normal | grep '^??' || true)" ]; then
  say "note: untracked files of the work tree are not in the clone"
fi

say "running \`$*\` in $run (a fresh $suite root)"
export rustup_home rustup_toolchain trust_bundle trust_env
started=$(date +%s)
set +e
# --kill-child and the parent-death signal: the inner namespace dies with this script.
setpriv --pdeathsig KILL -- unshare --pid --fork --kill-child --mount --propagation private \
  "$here/scripts/fresh-machine.sh" --inside "$run" "$@" &
inner=$!
wait "$inner"
code=$?
set -e
inner=
say "\`$*\` exited $code after $(( $(date +%s) - started ))s"
exit "$code"
