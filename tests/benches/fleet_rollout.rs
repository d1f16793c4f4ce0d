//! Benchmark: a policy rollout in waves across a large simulated fleet, through the real
//! calseg-server, beside the same fleet picking up a change without waves, measured in the same
//! run. The measurement is `calseg_tests::bench::fleet` (its docs say what is measured);
//! `scripts/bench.sh` runs it in the report.
//!
//! Run: `cargo build --release --bins && BENCH_AGENTS=1000 cargo bench -p calseg-tests --bench
//! fleet_rollout`. BENCH_AGENTS defaults to 10000. Raises RLIMIT_NOFILE first (the server
//! inherits it); gives up after 10 minutes. Loopback only.

use calseg_tests::bench::{env_usize, fleet, procstat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = procstat::raise_nofile(env_usize("BENCH_AGENTS", 10_000));
    fleet::run(n).await?;
    Ok(())
}
