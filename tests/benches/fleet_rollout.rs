//! Benchmark: a policy rollout in waves across a large simulated fleet, through the real
//! calseg-server, beside the same fleet picking up a change without waves (every node at once)
//! measured in the same run.
//!
//! N simulated agents (BENCH_AGENTS, default 10000) enroll (auto-approved, 64 at a time), each
//! with its own fleet certificate and so its own HTTPS client, then long-poll their manifest
//! (`?wait=55`, If-None-Match) as tokio tasks of this one process. A reload (SIGHUP) with
//! `canary = 1`, `wave = "20%"`, `bake = "0s"` starts a rollout; every agent reports the new
//! manifest healthy as soon as it receives it, as a real agent does once converged. Printed:
//! enroll time, time until every node has the new revision, the waves' open times, pickup
//! latency from a wave's opening to each node's receipt (p50/p99), the server's CPU time over
//! the rollout and its peak memory; then the baseline: a second reload with a policy without
//! waves, and the ratio of the two times.
//!
//! Run: `cargo build --release --bins && BENCH_AGENTS=1000 cargo bench -p calseg-tests --bench
//! fleet_rollout`. Raises RLIMIT_NOFILE first (the server inherits it); gives up after 10
//! minutes. Loopback only. The server's per-node etcd RBAC reconcile runs meanwhile, as it
//! would in production: its work is part of the CPU figures.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use calseg_api::paths;
use calseg_api::rollout::{RolloutState, RolloutStatus};
use calseg_tests::api_client::{TestNode, admin_client, get_json, report_at, sim_fleet_policy};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use futures::StreamExt;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The wave settings of the rollouts here.
const WAVES: &str = "[rollout]\ncanary = 1\nwave = \"20%\"\nbake = \"0s\"\n";
const GIVE_UP: Duration = Duration::from_secs(600);
/// File descriptors kept for etcd, the server's own files and this process's other needs.
const SPARE_FDS: u64 = 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raises RLIMIT_NOFILE so `wanted` agents fit (one socket each here and one in the server,
/// which inherits the limit); returns how many agents fit the limit it got.
fn raise_nofile(wanted: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let need = wanted as u64 + SPARE_FDS;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let target = need.max(soft);
    let got = match setrlimit(Resource::RLIMIT_NOFILE, target, target.max(hard)) {
        Ok(()) => target,
        Err(e) => {
            println!("cannot raise RLIMIT_NOFILE to {target} ({e}); trying the hard limit {hard}");
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => hard,
                Err(e) => {
                    println!("cannot raise RLIMIT_NOFILE to {hard} either ({e})");
                    soft
                }
            }
        }
    };
    let fits = usize::try_from(got.saturating_sub(SPARE_FDS)).unwrap_or(usize::MAX);
    if fits < wanted {
        println!("RLIMIT_NOFILE is {got}: running {fits} agents instead of {wanted}");
    }
    fits.min(wanted)
}

/// When each agent first received each policy revision.
#[derive(Default)]
struct Receipts {
    by_revision: HashMap<u64, Vec<Instant>>,
}

impl Receipts {
    fn count(&self, revision: u64) -> usize {
        self.by_revision.get(&revision).map_or(0, Vec::len)
    }
}

/// One simulated agent: long-polls its manifest, reports every new one healthy.
async fn agent(node: TestNode, receipts: Arc<Mutex<Receipts>>) {
    let client = node.client().expect("client");
    let url = format!("{}{}", node.base, paths::MANIFEST);
    let (mut etag, mut last_policy) = (None::<String>, 0);
    loop {
        let mut request = match &etag {
            Some(etag) => client
                .get(format!("{url}?wait=55"))
                .header("if-none-match", etag),
            None => client.get(&url),
        };
        request = request.timeout(Duration::from_secs(75));
        let response = match request.send().await {
            Ok(response) => response,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            continue;
        }
        if status != StatusCode::OK {
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(retry)).await;
            continue;
        }
        let received = Instant::now();
        etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Ok(body) = response.json::<serde_json::Value>().await else {
            etag = None;
            continue;
        };
        let policy = body["policy_revision"].as_u64().unwrap_or(0);
        if policy != last_policy {
            last_policy = policy;
            receipts
                .lock()
                .unwrap()
                .by_revision
                .entry(policy)
                .or_default()
                .push(received);
        }
        let report = report_at(body["revision"].as_str().unwrap_or_default(), &[]);
        for _ in 0..5 {
            if node
                .report(&report)
                .await
                .is_ok_and(|a| a.status.is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Utime + stime of process `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // /proc counts in USER_HZ, 100 on Linux.
    ticks / 100.0
}

/// VmHWM of process `pid`, in MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The pid of the running server process.
fn server_pid(server: &ServerProcess) -> u32 {
    server.pid().expect("the calseg-server process runs")
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

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Waits until `receipts` counts `n` for `revision`; the instant of the last one.
async fn all_received(receipts: &Mutex<Receipts>, revision: u64, n: usize) -> Instant {
    loop {
        {
            let receipts = receipts.lock().unwrap();
            if receipts.count(revision) >= n {
                return *receipts.by_revision[&revision].iter().max().unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let wanted = env_usize("BENCH_AGENTS", 10_000);
    let n = raise_nofile(wanted);
    if tokio::time::timeout(GIVE_UP, run(n)).await.is_err() {
        println!("gave up: the benchmark did not finish within {GIVE_UP:?} with {n} agents");
        std::process::exit(1);
    }
}

async fn run(n: usize) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let endpoint = etcd.endpoint(0);
    let server = ServerProcess::start(
        &etcd,
        &sim_fleet_policy(&endpoint, "a.service", ""),
        "auto_approve = [\"sim-*\"]",
    )
    .await
    .expect("server");
    let pid = server_pid(&server);
    println!(
        "calseg-server binary: {} (pid {pid}); {n} simulated agents",
        calseg_tests::bins::path("calseg-server").display()
    );
    let admin = admin_client(&server).expect("admin client");
    let rollout_url = format!("{}{}", server.url(), paths::ADMIN_ROLLOUT);

    // Enroll, 64 at a time.
    let started = Instant::now();
    let (url, ca) = (server.url(), server.fleet_ca_pem());
    let nodes: Vec<TestNode> = futures::stream::iter(0..n)
        .map(|i| {
            let (url, ca) = (url.clone(), ca.clone());
            async move {
                let mut node = TestNode::new(&format!("sim-{i:05}"), &url, &ca).expect("node");
                for attempt in 0.. {
                    match node.enroll(None).await {
                        Ok(a) if a.status == StatusCode::OK && node.cert_pem.is_some() => break,
                        other => {
                            assert!(attempt < 20, "{} cannot enroll: {other:?}", node.name);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                node
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let enroll_time = started.elapsed();
    println!(
        "enroll: {n} agents in {:.1} s ({:.0}/s)",
        enroll_time.as_secs_f64(),
        n as f64 / enroll_time.as_secs_f64()
    );

    // Every agent gets revision 1, reports it, and parks its long-poll.
    let receipts = Arc::new(Mutex::new(Receipts::default()));
    let agents: Vec<_> = nodes
        .into_iter()
        .map(|node| tokio::spawn(agent(node, Arc::clone(&receipts))))
        .collect();
    let started = Instant::now();
    all_received(&receipts, 1, n).await;
    loop {
        let status = poll_status(&admin, &rollout_url).await;
        if status.converged == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "first manifest: every agent converged on revision 1 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let the last reports' long-polls park.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The rollout in waves.
    std::fs::write(
        server.policy_path(),
        sim_fleet_policy(&endpoint, "b.service", WAVES),
    )
    .unwrap();
    let cpu_before = cpu_secs(pid);
    let reloaded = Instant::now();
    server.reload().expect("SIGHUP");
    // Wave openings as seen by polling the admin API every 50 ms.
    let mut opened_seen: Vec<Instant> = Vec::new();
    let done = loop {
        let polled = Instant::now();
        let status = poll_status(&admin, &rollout_url).await;
        if let Some(w) = status.waves.as_ref().filter(|w| w.to_revision == 2) {
            while opened_seen.len() < w.opened_waves {
                opened_seen.push(polled);
            }
            if w.state == RolloutState::Done {
                break status;
            }
            assert!(
                !matches!(w.state, RolloutState::Paused | RolloutState::Aborted),
                "the rollout stopped: {status:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let full_at = all_received(&receipts, 2, n).await;
    let cpu_rollout = cpu_secs(pid) - cpu_before;
    let rollout_time = full_at - reloaded;
    let waves = done.waves.clone().unwrap();
    let cli: RolloutStatus = serde_json::from_str(
        &server
            .cli_ok(&["rollout", "status", "--json"])
            .expect("rollout status"),
    )
    .expect("status JSON");
    let opened_at: Vec<i64> = cli
        .waves
        .as_ref()
        .map(|w| w.waves.iter().filter_map(|w| w.opened_at).collect())
        .unwrap_or_default();
    println!(
        "rollout in waves (canary 1, wave 20%, bake 0s): revision 2 on 100% of {n} nodes {:.2} s after SIGHUP, state {}",
        rollout_time.as_secs_f64(),
        waves.state
    );
    let t0 = opened_at.first().copied().unwrap_or(0);
    for (k, wave) in waves.waves.iter().enumerate() {
        println!(
            "  wave {k}: {} nodes, opened_at {} (+{} s, rollout status --json), seen open {:.2} s after SIGHUP",
            wave.size,
            opened_at.get(k).copied().unwrap_or(0),
            opened_at.get(k).copied().unwrap_or(0) - t0,
            opened_seen
                .get(k)
                .map_or(f64::NAN, |t| (*t - reloaded).as_secs_f64())
        );
    }
    // Pickup latency: waves open one after another (the next only once every node of the last
    // one reported), so receipts sorted in time fall into the waves in order. A wave's opening is
    // the SIGHUP for the canary, else the first poll that showed it open, or its first receipt
    // if that came earlier (the poll runs every 50 ms).
    let mut got: Vec<Instant> = receipts.lock().unwrap().by_revision[&2].clone();
    got.sort();
    let mut latencies = Vec::new();
    let mut offset = 0;
    for (k, wave) in waves.waves.iter().enumerate() {
        let chunk = &got[offset..(offset + wave.size).min(got.len())];
        offset += wave.size;
        let Some(first) = chunk.first() else { continue };
        let open = if k == 0 {
            reloaded
        } else {
            opened_seen.get(k).copied().unwrap_or(*first).min(*first)
        };
        latencies.extend(chunk.iter().map(|t| *t - open));
    }
    latencies.sort();
    println!(
        "  pickup latency from wave open to receipt: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 50).as_secs_f64() * 1000.0,
        percentile(&latencies, 99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
    println!(
        "  server CPU over the rollout: {cpu_rollout:.2} s (utime+stime); peak memory (VmHWM) {:.0} MiB",
        peak_mib(pid)
    );

    // Baseline: the same fleet, a policy without waves: every node at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(
        server.policy_path(),
        sim_fleet_policy(&endpoint, "c.service", ""),
    )
    .unwrap();
    let cpu_before = cpu_secs(pid);
    let reloaded = Instant::now();
    server.reload().expect("SIGHUP");
    let full_at = all_received(&receipts, 3, n).await;
    let baseline_time = full_at - reloaded;
    let mut got: Vec<Duration> = receipts.lock().unwrap().by_revision[&3]
        .iter()
        .map(|t| *t - reloaded)
        .collect();
    got.sort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "baseline, no waves: revision 3 on 100% of {n} nodes {:.2} s after SIGHUP (p50 {:.0} ms, p99 {:.0} ms); server CPU {:.2} s",
        baseline_time.as_secs_f64(),
        percentile(&got, 50).as_secs_f64() * 1000.0,
        percentile(&got, 99).as_secs_f64() * 1000.0,
        cpu_secs(pid) - cpu_before
    );
    println!(
        "ratio: the rollout in {} waves took {:.1}x the time of the unconditional change; peak server memory {:.0} MiB",
        waves.total_waves,
        rollout_time.as_secs_f64() / baseline_time.as_secs_f64(),
        peak_mib(pid)
    );
    for agent in agents {
        agent.abort();
    }
}
