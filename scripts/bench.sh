#!/usr/bin/env bash
# Runs calseg's benchmark report: every measurement beside its baseline in one run, against a
# real etcd and real (sandboxed) systemd, loopback only, under 15 minutes on 2 cores. Writes
# docs/benchmarks.md and the plots in docs/benchmarks/. Installs missing prerequisites first.
# Run as root.
#   scripts/bench.sh           the full report
#   scripts/bench.sh --quick   small sizes (about 2 minutes), written to target/bench-quick/
#   scripts/bench.sh --large   at most 90 minutes: Calico's traffic while calseg provisions, per
#                              [etcd] auth_change_duty, and provisioning 1,000, 3,000 and 10,000
#                              nodes beside etcd's floor; writes docs/benchmarks-large.md (a size
#                              that would pass the bound is reported as not run)
#   scripts/bench.sh --large --quick   the same at small sizes, into target/bench-quick/
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "calseg: the benchmarks boot systemd in a namespace sandbox and must run as root" >&2
  exit 1
fi
# The packaging tools are not needed here.
CALSEG_NO_PACKAGING_TOOLS=1 bash scripts/prereqs.sh

# The benchmarks run the real release binaries: build them first.
cargo build --release --bins --locked
cargo bench --locked -p calseg-tests --bench report -- "$@"
