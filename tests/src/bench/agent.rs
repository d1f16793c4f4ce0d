//! CPU time (user + sys) and peak memory (ru_maxrss) of the real `calseg-agent once` in a
//! sandboxed host with real systemd, against a real server and etcd: a full cycle that makes,
//! gets signed and installs 3 identities and restarts the stand-in calico-node unit (once, the
//! first after enrollment, and as the median of forced renewals doing the same work), and a
//! no-change cycle. Each runs under the rusage wrapper ([`super::procstat`]), inside the
//! sandbox.
//!
//! The floors, measured the same way in the same sandbox: a process spawn (`true`); and a
//! process that does the least a cycle can do, with the same crates: load the fleet identity,
//! make one mTLS manifest request (reqwest + rustls + ring) — the no-change floor — plus, for
//! the full-cycle floor, generate the 3 keys and CSRs with the agent's own key code. The floor
//! process is this benchmark executable re-executed ([`FLOOR_MODE`]).

use super::procstat::{Usage, read_usage, rusage_wrapper_main, wrapped_command};
use crate::agent_host::{AgentHost, describe};
use crate::etcd::EtcdCluster;
use crate::server::ServerProcess;
use anyhow::{Context, Result, bail, ensure};

/// The first argument that makes a benchmark executable act as the floor process:
/// `EXE __calseg_bench_floor SERVER_URL KEYS`.
pub const FLOOR_MODE: &str = "__calseg_bench_floor";

/// The node the benchmark's sandbox is.
const NODE: &str = "bench-agent";

/// Everything measured.
#[derive(Debug, Clone, Copy)]
pub struct AgentResult {
    /// The first `once`: 3 identities made, signed, installed, unit restarted.
    pub full: Usage,
    /// The median (by CPU) of `repeats` forced renewals (`calseg-agent renew`): the same work
    /// as the full cycle (3 new keys, signed, checked, installed, unit restarted), repeated.
    pub renewal: Usage,
    /// The median (by CPU) of `repeats` no-change `once` runs.
    pub no_change: Usage,
    pub repeats: usize,
    /// `true`.
    pub spawn: Usage,
    /// One mTLS manifest request.
    pub floor_fetch: Usage,
    /// That plus 3 keys + CSRs.
    pub floor_full: Usage,
}

/// For a benchmark's `main`: when the arguments ask for the rusage wrapper or the floor
/// process, runs it and returns its exit code; `None` otherwise.
pub fn child_main() -> Option<i32> {
    if let Some(code) = rusage_wrapper_main() {
        return Some(code);
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(FLOOR_MODE) {
        return None;
    }
    Some(match floor(&args[2..]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floor process: {e:#}");
            1
        }
    })
}

/// The floor process: one manifest request with the fleet identity, then `KEYS` keys + CSRs.
fn floor(args: &[String]) -> Result<()> {
    let [url, keys] = args else {
        bail!("usage: {FLOOR_MODE} SERVER_URL KEYS");
    };
    let dir = std::path::Path::new("/var/lib/calseg/agent");
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let (ca, cert, key) = (
        read("fleet-ca.pem")?,
        read("fleet.pem")?,
        read("fleet.key")?,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = crate::api_client::https_client(&ca, Some((&cert, &key)))?;
        let response = client
            .get(format!("{url}{}", calseg_api::paths::MANIFEST))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "manifest: {}",
            response.status()
        );
        response.bytes().await?;
        Ok(())
    })?;
    for i in 0..keys.parse::<usize>()? {
        calseg_agent::keys::generate(
            calseg_agent::keys::KeyAlgorithm::P256,
            &format!("component-{i}.{NODE}"),
        )?;
    }
    Ok(())
}

/// The benchmark's three components for [`NODE`]; calico-node restarts the stand-in unit.
fn policy(endpoint: &str) -> String {
    super::rbac::policy_for(
        endpoint,
        &[NODE.to_owned()],
        "restart = [\"calico-node.service\"]\nenv_file = \"/etc/calico/calico-node.env\"\n",
    )
}

/// Runs `command` in the sandbox under the rusage wrapper; its usage and exit code.
fn measured(agent: &AgentHost, command: &str) -> Result<(Usage, i32)> {
    let out = "/tmp/calseg-bench-rusage.json";
    let output = agent.host.exec(&wrapped_command(out, command)?)?;
    let code = output.status.code().unwrap_or(-1);
    if code == 125 {
        bail!("the rusage wrapper failed: {}", describe(&output));
    }
    let usage = read_usage(&agent.host.path(out))
        .with_context(|| format!("`{command}`: {}", describe(&output)))?;
    Ok((usage, code))
}

/// The run with the median CPU time of `repeats` runs of `command`, which must exit `expect`.
fn median(agent: &AgentHost, command: &str, repeats: usize, expect: i32) -> Result<Usage> {
    let mut runs = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let (usage, code) = measured(agent, command)?;
        ensure!(code == expect, "`{command}` exited {code}, not {expect}");
        runs.push(usage);
    }
    runs.sort_by(|a, b| a.cpu().total_cmp(&b.cpu()));
    Ok(runs[runs.len() / 2])
}

/// Boots the sandbox, enrolls, and measures the cycles and their floors.
pub async fn run(repeats: usize) -> Result<AgentResult> {
    crate::prereq::require_root();
    let etcd = EtcdCluster::start().await?;
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "").await?;
    let agent = AgentHost::boot(NODE, &server).await?;
    agent.enroll(&server)?;
    let binary = crate::bins::path("calseg-agent");
    let once = format!("{} once", binary.display());
    let (full, code) = measured(&agent, &once)?;
    ensure!(
        code == 2,
        "the first cycle did not install and converge (exit {code})"
    );
    let no_change = median(&agent, &once, repeats, 0)?;
    let renew = format!("{} renew", binary.display());
    let renewal = median(&agent, &renew, repeats, 2)?;
    let spawn = median(&agent, "/bin/true", repeats, 0)?;
    let exe = std::env::current_exe()?;
    let floor = |keys: usize| format!("{} {FLOOR_MODE} {} {keys}", exe.display(), server.url());
    let floor_fetch = median(&agent, &floor(0), repeats, 0)?;
    let floor_full = median(&agent, &floor(3), repeats, 0)?;
    let result = AgentResult {
        full,
        renewal,
        no_change,
        repeats,
        spawn,
        floor_fetch,
        floor_full,
    };
    print(&result);
    Ok(result)
}

fn line(what: &str, u: &Usage) {
    println!(
        "  {what:<44} CPU {:>7.1} ms (user {:.1}, sys {:.1}), peak RSS {:>6.1} MiB, wall {:>7.1} ms",
        u.cpu() * 1e3,
        u.user * 1e3,
        u.sys * 1e3,
        u.peak_mib(),
        u.wall * 1e3
    );
}

fn print(r: &AgentResult) {
    println!(
        "agent cycle (calseg-agent once in a sandboxed host, median of {} where repeated):",
        r.repeats
    );
    line("full cycle, 3 identities (1 run)", &r.full);
    line("forced renewal, 3 identities", &r.renewal);
    line("floor: mTLS manifest request + 3 keys/CSRs", &r.floor_full);
    line("no-change cycle", &r.no_change);
    line("floor: one mTLS manifest request", &r.floor_fetch);
    line("floor: process spawn (true)", &r.spawn);
    println!(
        "  ratios: full / its floor CPU {:.1}x, RSS {:.1}x; no-change / its floor CPU {:.1}x, RSS {:.1}x",
        r.renewal.cpu() / r.floor_full.cpu().max(1e-6),
        r.renewal.peak_mib() / r.floor_full.peak_mib().max(1e-6),
        r.no_change.cpu() / r.floor_fetch.cpu().max(1e-6),
        r.no_change.peak_mib() / r.floor_fetch.peak_mib().max(1e-6)
    );
}
