#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (issue 10) and fails on any crash.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, every target
# Stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the nightly flags libFuzzer's instrumentation
# needs. Installs cargo-fuzz if missing. Each target starts from its committed seeds
# (fuzz/corpus/<target>/, read only) plus fuzz/regressions/<target>/; what it discovers goes to
# fuzz/target/corpus/<target>/ (not committed). A crash leaves its input in
# fuzz/artifacts/<target>/: fix the bug, then copy the input into fuzz/regressions/<target>/,
# where tests/tests/fuzz_corpus.rs replays it in the normal test suite.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(policy csr api_json cni_conflist agent_config server_config backup)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# One build for every target (debug assertions on: overflow checks catch arithmetic bugs).
cargo fuzz build --debug-assertions

failed=()
for target in "${targets[@]}"; do
    work="target/corpus/$target"
    mkdir -p "$work" "regressions/$target"
    echo "fuzz: $target for ${seconds}s" >&2
    log="target/fuzz-$target.log"
    if cargo fuzz run --debug-assertions "$target" "$work" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::new_units_added|Done [0-9]+ runs' "$log" >&2 || true
    else
        failed+=("$target")
        tail -n 40 "$log" >&2
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash" >&2
