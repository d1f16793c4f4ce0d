//! Benchmark: CPU time and peak memory of the real `calseg-agent once` (a full cycle with 3
//! identities, and a no-change cycle) in a sandboxed host with real systemd, beside process
//! floors measured the same way. The measurement is `calseg_tests::bench::agent`;
//! `scripts/bench.sh` runs it in the report.
//!
//! Run as root: `cargo build --release --bins && cargo bench -p calseg-tests --bench
//! agent_cycle`. BENCH_REPEATS (default 5) no-change cycles and floors; the median is shown.

use calseg_tests::bench::{agent, env_usize};

fn main() -> anyhow::Result<()> {
    // This executable is also the rusage wrapper and the floor process inside the sandbox.
    if let Some(code) = agent::child_main() {
        std::process::exit(code);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(agent::run(env_usize("BENCH_REPEATS", 5)))?;
    Ok(())
}
