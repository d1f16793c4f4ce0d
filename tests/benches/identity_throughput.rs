//! Benchmark: CSR signings/s and manifest pulls/s through the real calseg-server over kept-alive
//! mutual-TLS connections, each beside its limit measured in the same run (a bare signing loop
//! with the same crypto; a minimal axum+rustls endpoint), and the per-signing phase timings.
//! The measurement is `calseg_tests::bench::identity`; `scripts/bench.sh` runs it in the report.
//!
//! Run: `cargo build --release --bins && cargo bench -p calseg-tests --bench identity_throughput`.
//! BENCH_REQUESTS (default 2000) and BENCH_CONCURRENCY (default 8) size the load; loopback only.

use calseg_tests::bench::{env_usize, identity};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests = env_usize("BENCH_REQUESTS", 2000);
    identity::run(requests, env_usize("BENCH_CONCURRENCY", 8)).await?;
    Ok(())
}
