//! Benchmark: provisioning etcd RBAC and certificates for N nodes x 3 components with calseg,
//! then a no-change reconcile, beside the documented manual procedure (cfssl gencert and one
//! `etcdctl` invocation per operation, as Calico's docs do) measured in the same run.
//! The measurement is `calseg_tests::bench::rbac`; `scripts/bench.sh` runs it in the report.
//!
//! Run: `cargo build --release --bins && cargo bench -p calseg-tests --bench rbac_provision`.
//! BENCH_NODES (default 1000) is the largest size (10 and 100 run too, when smaller);
//! BENCH_MANUAL_NODES (default 100) is the largest size the manual procedure runs in full,
//! above which BENCH_SAMPLE (default 10) nodes are sampled and extrapolated.
//! Figures are printed; nothing is asserted about time.

use calseg_tests::bench::{env_usize, rbac};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let largest = env_usize("BENCH_NODES", 1000);
    let mut nodes: Vec<usize> = [10, 100, 1000]
        .into_iter()
        .filter(|&n| n < largest)
        .collect();
    nodes.push(largest);
    let sizes = rbac::Sizes {
        nodes,
        manual_full_max: env_usize("BENCH_MANUAL_NODES", 100),
        sample: env_usize("BENCH_SAMPLE", 10),
    };
    rbac::run(&sizes).await?;
    Ok(())
}
