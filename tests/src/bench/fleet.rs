//! A policy rollout in waves across a large simulated fleet, through the real calseg-server,
//! beside the same fleet picking up a change without waves (every node at once), measured in
//! the same run.
//!
//! N simulated agents enroll (auto-approved, 64 at a time), each with its own fleet certificate
//! and so its own HTTPS client, then long-poll their manifest as tokio tasks of this process
//! ([`super::fleet_sim`]). A reload (SIGHUP) with [`WAVES`] starts a rollout; every agent
//! reports the new manifest healthy as soon as it receives it. Measured: time until every node
//! has the new revision, pickup latency from a wave's opening to each node's receipt, the
//! server's CPU time over the rollout and its peak memory; then a second reload with a policy
//! without waves. The server's per-node etcd RBAC reconcile runs meanwhile, as it would in
//! production: its work is part of the CPU figures. Call [`super::procstat::raise_nofile`]
//! first (the server inherits the limit).

use super::fleet_sim::{Receipts, agent, all_received, lock};
use super::procstat::{cpu_secs, peak_mib};
use super::{percentile, secs};
use crate::api_client::{TestNode, admin_client, get_json, sim_fleet_policy};
use crate::etcd::EtcdCluster;
use crate::server::ServerProcess;
use anyhow::{Context, Result, bail, ensure};
use calseg_api::paths;
use calseg_api::rollout::{RolloutState, RolloutStatus};
use futures::StreamExt;
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The wave settings of the rollouts here.
pub const WAVES: &str = "[rollout]\ncanary = 1\nwave = \"20%\"\nbake = \"0s\"\n";

/// Everything measured at one fleet size.
#[derive(Debug, Clone)]
pub struct FleetResult {
    pub agents: usize,
    pub enroll: Duration,
    /// SIGHUP to the last node's receipt, in waves and without.
    pub waves_time: Duration,
    pub baseline_time: Duration,
    /// Sizes of the waves.
    pub waves: Vec<usize>,
    /// Pickup latency from a wave's opening to a node's receipt.
    pub pickup_p50: Duration,
    pub pickup_p99: Duration,
    /// Server CPU (utime + stime) over each rollout, seconds.
    pub cpu_waves: f64,
    pub cpu_baseline: f64,
    /// The server's VmHWM at the end, MiB.
    pub peak_mib: f64,
}

/// The rollout status from the admin API, asking again while the server sheds load (429).
async fn poll_status(admin: &reqwest::Client, url: &str) -> RolloutStatus {
    loop {
        match get_json(admin, url).await {
            Ok(status) => return status,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn enroll_all(server: &ServerProcess, n: usize) -> Result<Vec<TestNode>> {
    let (url, ca) = (server.url(), server.fleet_ca_pem());
    let nodes: Vec<Result<TestNode>> = futures::stream::iter(0..n)
        .map(|i| {
            let (url, ca) = (url.clone(), ca.clone());
            async move {
                let mut node = TestNode::new(&format!("sim-{i:05}"), &url, &ca)?;
                for _attempt in 0..20 {
                    match node.enroll(None).await {
                        Ok(a) if a.status == StatusCode::OK && node.cert_pem.is_some() => {
                            return Ok(node);
                        }
                        _ => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
                bail!("{} cannot enroll", node.name)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    nodes.into_iter().collect()
}

/// Pickup latencies: waves open one after another (the next only once every node of the last
/// one reported), so receipts sorted in time fall into the waves in order. A wave opens at the
/// SIGHUP for the canary, else at the first poll that showed it open, or its first receipt if
/// that came earlier (the poll runs every 50 ms).
fn pickups(
    mut got: Vec<Instant>,
    sizes: &[usize],
    opened: &[Instant],
    reload: Instant,
) -> Vec<Duration> {
    got.sort();
    let mut latencies = Vec::new();
    let mut offset = 0;
    for (k, size) in sizes.iter().enumerate() {
        let chunk = &got[offset.min(got.len())..(offset + size).min(got.len())];
        offset += size;
        let Some(first) = chunk.first() else { continue };
        let open = if k == 0 {
            reload
        } else {
            opened.get(k).copied().unwrap_or(*first).min(*first)
        };
        latencies.extend(chunk.iter().map(|t| *t - open));
    }
    latencies.sort();
    latencies
}

/// How long one fleet size may take before the benchmark gives up.
pub const GIVE_UP: Duration = Duration::from_secs(600);

/// Runs the rollout in waves and the baseline with `n` simulated agents, within [`GIVE_UP`].
pub async fn run(n: usize) -> Result<FleetResult> {
    match tokio::time::timeout(GIVE_UP, measure(n)).await {
        Ok(result) => result,
        Err(_) => {
            bail!("gave up: the fleet benchmark did not finish within {GIVE_UP:?} with {n} agents")
        }
    }
}

async fn measure(n: usize) -> Result<FleetResult> {
    let etcd = EtcdCluster::start().await?;
    let endpoint = etcd.endpoint(0);
    let policy = |unit: &str, rollout: &str| sim_fleet_policy(&endpoint, unit, rollout);
    let server = ServerProcess::start(
        &etcd,
        &policy("a.service", ""),
        "auto_approve = [\"sim-*\"]",
    )
    .await?;
    let pid = server.pid().context("the calseg-server process runs")?;
    let admin = admin_client(&server)?;
    let rollout_url = format!("{}{}", server.url(), paths::ADMIN_ROLLOUT);

    let started = Instant::now();
    let nodes = enroll_all(&server, n).await?;
    let enroll = started.elapsed();
    println!(
        "fleet {n}: enrolled in {:.1} s ({:.0}/s)",
        secs(enroll),
        n as f64 / secs(enroll)
    );

    // Every agent gets revision 1, reports it, and parks its long-poll.
    let receipts = Arc::new(Mutex::new(Receipts::default()));
    let agents: Vec<_> = nodes
        .into_iter()
        .map(|node| tokio::spawn(agent(node, Arc::clone(&receipts))))
        .collect();
    all_received(&receipts, 1, n).await;
    while poll_status(&admin, &rollout_url).await.converged < n {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the last reports' long-polls park.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The rollout in waves.
    std::fs::write(server.policy_path(), policy("b.service", WAVES))?;
    let cpu_before = cpu_secs(pid)?;
    let reloaded = Instant::now();
    server.reload()?;
    let mut opened_seen: Vec<Instant> = Vec::new();
    let done = loop {
        let polled = Instant::now();
        let status = poll_status(&admin, &rollout_url).await;
        if let Some(w) = status.waves.clone().filter(|w| w.to_revision == 2) {
            while opened_seen.len() < w.opened_waves {
                opened_seen.push(polled);
            }
            if w.state == RolloutState::Done {
                break w;
            }
            ensure!(
                !matches!(w.state, RolloutState::Paused | RolloutState::Aborted),
                "the rollout stopped: {status:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let full_at = all_received(&receipts, 2, n).await;
    let cpu_waves = cpu_secs(pid)? - cpu_before;
    let waves_time = full_at - reloaded;
    let sizes: Vec<usize> = done.waves.iter().map(|w| w.size).collect();
    let latencies = pickups(lock(&receipts).of(2), &sizes, &opened_seen, reloaded);

    // Baseline: the same fleet, a policy without waves: every node at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(server.policy_path(), policy("c.service", ""))?;
    let cpu_before = cpu_secs(pid)?;
    let reloaded = Instant::now();
    server.reload()?;
    let baseline_time = all_received(&receipts, 3, n).await - reloaded;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_baseline = cpu_secs(pid)? - cpu_before;
    for agent in agents {
        agent.abort();
    }
    let result = FleetResult {
        agents: n,
        enroll,
        waves_time,
        baseline_time,
        waves: sizes,
        pickup_p50: percentile(&latencies, 50),
        pickup_p99: percentile(&latencies, 99),
        cpu_waves,
        cpu_baseline,
        peak_mib: peak_mib(pid)?,
    };
    print(&result);
    Ok(result)
}

fn print(r: &FleetResult) {
    println!(
        "fleet {}: in {} waves (canary 1, wave 20%, bake 0s) {:.2} s, server CPU {:.2} s; pickup from wave open p50 {:.0} ms, p99 {:.0} ms",
        r.agents,
        r.waves.len(),
        secs(r.waves_time),
        r.cpu_waves,
        r.pickup_p50.as_secs_f64() * 1e3,
        r.pickup_p99.as_secs_f64() * 1e3
    );
    println!(
        "fleet {}: without waves {:.2} s, server CPU {:.2} s; ratio waves / no waves {:.1}x; server peak memory {:.0} MiB",
        r.agents,
        secs(r.baseline_time),
        r.cpu_baseline,
        secs(r.waves_time) / secs(r.baseline_time).max(1e-9),
        r.peak_mib
    );
}
