//! The benchmark measurements, as library functions: the single bench targets in `benches/`
//! and the report runner (`benches/report/`, run by `scripts/bench.sh`) call the same code.
//! Each function measures calseg and its baseline in the same run, prints its figures as it
//! goes and returns them as a plain struct for the report.
//!
//! # Layout
//! - [`rbac`]: provisioning N nodes x 3 components from scratch, calseg beside the manual
//!   procedure (cfssl + one etcdctl call per operation), and the no-change reconcile.
//! - [`manual`]: the manual procedure itself, as Calico's docs describe it.
//! - [`identity`]: CSR signings/s and manifest pulls/s beside their limits, with phase timings.
//! - [`agent`]: CPU time and peak memory of the real agent's cycles beside process floors.
//! - [`fleet`]: a rollout in waves across 1,000s of simulated agents, beside no waves.
//! - [`large`]: provisioning up to 10,000 nodes beside etcd's floor (the same operations in a
//!   bare loop).
//! - [`calico_traffic`]: simulated Calico clients' latencies while calseg provisions, per
//!   `auth_change_duty`.
//! - `fleet_sim`: one simulated agent and the receipts of the revisions it saw.
//! - [`procstat`]: CPU time and peak memory of processes, and the file-descriptor limit.

/// The real agent's cycle cost.
pub mod agent;
/// Calico's traffic while calseg provisions.
pub mod calico_traffic;
/// Rollouts across a simulated fleet.
pub mod fleet;
/// Simulated agents.
mod fleet_sim;
/// Signing and manifest throughput.
pub mod identity;
/// Provisioning at fleet scale beside etcd's floor.
pub mod large;
/// The documented manual procedure.
pub mod manual;
/// Process CPU, memory and limits.
pub mod procstat;
/// Provisioning and no-change reconcile.
pub mod rbac;

use futures::StreamExt;
use std::time::{Duration, Instant};

/// The three components every benchmark node runs: (component name, Calico grant table).
pub const COMPONENTS: [(&str, &str); 3] = [
    ("calico-node", "calico-node"),
    ("cni-plugin", "cni-plugin"),
    ("calicoctl-ro", "calicoctl-read-only"),
];

/// An environment variable as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Facts about the machine that absolute figures depend on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub etcd_version: String,
    pub kernel: String,
    /// UTC, RFC 3339.
    pub date: String,
}

impl Machine {
    /// Reads the facts from /proc and `etcd --version`.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        // The etcd the harness runs (see `prereq::etcd_tool`), without failing when it is missing.
        let etcd = std::env::var_os(crate::prereq::ETCD_BIN_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map_or_else(
                || "etcd".into(),
                |dir| std::path::PathBuf::from(dir).join("etcd"),
            );
        let etcd_version = std::process::Command::new(etcd)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("etcd Version:").map(|v| v.trim().to_owned()))
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            etcd_version,
            kernel,
            date,
        }
    }
}

/// Runs `count` calls of `call` with `concurrency` in flight; returns calls per second, or an
/// error when any call failed.
pub async fn rate<F, Fut>(count: usize, concurrency: usize, call: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let ok = futures::stream::iter(0..count)
        .map(call)
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    anyhow::ensure!(ok == count, "{} of {count} calls failed", count - ok);
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The `p`th percentile of sorted durations (zero when empty).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Seconds as a float, for printing.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
