//! Provisioning N nodes x 3 components from scratch (etcd roles, users and grants, and one
//! certificate per etcd user) with calseg, beside the manual procedure on the same kind of
//! etcd; then calseg's no-change reconcile beside the floor of reading the same auth state.
//!
//! calseg's side: `calseg-server apply` from scratch (a real process against a real etcd), then
//! 3N keys + CSRs (the agent's code) signed by calseg's etcd-client CA (the server's code),
//! in-process on one thread. The manual side: [`Manual`]. Where the manual procedure does not
//! fit the time bound (N above `manual_full_max`), it is SAMPLED: `sample` nodes on the etcd of
//! the largest full manual run (holding its M nodes), and `sample` nodes on calseg's etcd for N
//! (holding N nodes), each giving a per-node time at that fill; the total is extrapolated as
//! T(M) + (N - M) x the mean of the two per-node times (the trapezoid rule over the fill, since
//! etcd 3.4's auth operations slow down as users grow).

use super::manual::Manual;
use super::{COMPONENTS, secs};
use crate::etcd::EtcdCluster;
use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Which sizes to run.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Node counts, ascending.
    pub nodes: Vec<usize>,
    /// The largest N the manual procedure runs in full; above it, it is sampled.
    pub manual_full_max: usize,
    /// Nodes per manual sample.
    pub sample: usize,
}

/// calseg at one size.
#[derive(Debug, Clone)]
pub struct CalsegRun {
    pub nodes: usize,
    /// `calseg-server apply` from scratch.
    pub apply: Duration,
    /// Changes it applied.
    pub changes: usize,
    /// Of those, the ones that make etcd rebuild its permission cache (all but role adds).
    pub rebuilding: usize,
    /// 3N keys + CSRs + signatures in-process.
    pub certs: Duration,
    /// A second `calseg-server apply`, which finds nothing to do.
    pub reconcile: Duration,
    /// The floor of that reconcile: the same auth state read in-process (list + get of every
    /// role and user, same parallelism), no process start, no diff.
    pub read_floor: Duration,
    /// Roles + users read by the floor.
    pub objects: usize,
}

impl CalsegRun {
    /// Provisioning in total: RBAC and certificates.
    pub fn total(&self) -> Duration {
        self.apply + self.certs
    }
}

/// How a manual figure was obtained.
#[derive(Debug, Clone)]
pub enum ManualMethod {
    /// Every node run.
    Full,
    /// `k` nodes sampled at two fills and extrapolated (see the module docs).
    Sampled {
        k: usize,
        /// The full run extrapolated from.
        from_nodes: usize,
        /// Per-node time at `from_nodes` and at `nodes`.
        per_node_low: Duration,
        per_node_high: Duration,
    },
}

/// The manual procedure at one size.
#[derive(Debug, Clone)]
pub struct ManualRun {
    pub nodes: usize,
    pub total: Duration,
    pub etcdctl: Duration,
    pub cfssl: Duration,
    pub operations: usize,
    pub certificates: usize,
    pub method: ManualMethod,
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct RbacResult {
    pub calseg: Vec<CalsegRun>,
    pub manual: Vec<ManualRun>,
}

/// A policy with `nodes` nodes (`node-0`…) x the three [`COMPONENTS`].
pub fn policy(endpoint: &str, nodes: usize) -> String {
    let names: Vec<String> = (0..nodes).map(|i| format!("node-{i}")).collect();
    policy_for(endpoint, &names, "")
}

/// A policy giving `names` the three [`COMPONENTS`]; `calico_node_extra` is TOML added to the
/// calico-node component (e.g. its `restart` units).
pub fn policy_for(endpoint: &str, names: &[String], calico_node_extra: &str) -> String {
    let mut text = format!("calico_version = \"3.29\"\n[etcd]\nendpoints = [\"{endpoint}\"]\n");
    for (name, table) in COMPONENTS {
        // calico-node gets the narrowed table: Calico's own, with the keys of one node in a
        // per-node role (a node grant under the published table would narrow nothing, which
        // the policy refuses).
        let table = if name == "calico-node" {
            "calico-node-per-node"
        } else {
            table
        };
        text.push_str(&format!("[components.{name}]\ngrants = \"{table}\"\n"));
        if name == "calico-node" {
            text.push_str(calico_node_extra);
        }
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    text.push_str(&format!(
        "[[hosts]]\nnames = [{}]\ncomponents = [\"calico-node\", \"cni-plugin\", \"calicoctl-ro\"]\n",
        quoted.join(", ")
    ));
    text
}

/// Runs `calseg-server COMMAND` on `policy`; returns its time and stdout. An `apply` prints
/// JSON and runs at `duty` (`[etcd] auth_change_duty`; `None`: the server's default).
pub(crate) fn server(
    command: &str,
    policy: &std::path::Path,
    etcd: &EtcdCluster,
    duty: Option<&str>,
) -> Result<(Duration, String)> {
    let binary = crate::bins::path("calseg-server");
    let mut cli = crate::bins::server_direct_with(&binary, command, policy, etcd.root_files());
    if command == "apply" {
        cli.arg("--json");
        if let Some(duty) = duty {
            cli.args(["--auth-change-duty", duty]);
        }
    }
    let started = Instant::now();
    let output = cli.output().context("run calseg-server")?;
    let elapsed = started.elapsed();
    ensure!(
        output.status.success(),
        "calseg-server {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((
        elapsed,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

/// 3N keys and CSRs (the agent's code) signed by an etcd-client CA (the server's code).
fn certificates(nodes: usize) -> Result<Duration> {
    use calseg_server::pki::{CaKind, CertificateAuthority, CsrRules};
    let now = time::OffsetDateTime::now_utc();
    let year = Duration::from_secs(86_400 * 365);
    let ca = CertificateAuthority::generate(CaKind::EtcdClient, "bench", year, now)?;
    let rules = CsrRules::default();
    let started = Instant::now();
    for i in 0..nodes {
        for (name, _) in COMPONENTS {
            let user = format!("{name}.node-{i}");
            let key = calseg_agent::keys::generate(calseg_agent::keys::KeyAlgorithm::P256, &user)?;
            ca.sign_client_csr(&key.csr_pem, &rules, &user, year, now)?;
        }
    }
    Ok(started.elapsed())
}

/// Reads every role and user with the etcd client crate, `parallelism` gets in flight.
async fn read_auth_state(etcd: &EtcdCluster) -> Result<(Duration, usize)> {
    let parallelism = calseg_server::rbac::DEFAULT_PARALLELISM;
    let started = Instant::now();
    let client = etcd.root_client().await?;
    let roles = client.clone().role_list().await?.roles().to_vec();
    let users = client.clone().user_list().await?.users().to_vec();
    let role_gets = futures::stream::iter(roles.iter().cloned())
        .map(|name| {
            let mut c = client.clone();
            async move { c.role_get(name).await.map(drop) }
        })
        .buffer_unordered(parallelism)
        .collect::<Vec<_>>();
    for got in role_gets.await {
        got?;
    }
    let user_gets = futures::stream::iter(users.iter().cloned())
        .map(|name| {
            let mut c = client.clone();
            async move { c.user_get(name).await.map(drop) }
        })
        .buffer_unordered(parallelism)
        .collect::<Vec<_>>();
    for got in user_gets.await {
        got?;
    }
    Ok((started.elapsed(), roles.len() + users.len()))
}

/// calseg from scratch on a fresh etcd; returns the figures and the etcd (the manual sample
/// for this size runs on it).
pub async fn calseg(nodes: usize) -> Result<(CalsegRun, EtcdCluster)> {
    let etcd = EtcdCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy(&etcd.endpoint(0), nodes))?;
    // To measure the trade-off of `[etcd] auth_change_duty` by hand (unset: the default).
    let duty = std::env::var("BENCH_AUTH_CHANGE_DUTY").ok();
    let (apply, out) = server("apply", &path, &etcd, duty.as_deref())?;
    let applied: serde_json::Value =
        serde_json::from_str(out.trim()).context("apply --json output")?;
    let changes = applied["applied"].as_u64().unwrap_or(0) as usize;
    let rebuilding = applied["plan"]["changes"].as_array().map_or(0, |all| {
        all.iter().filter(|c| c["op"] != "create_role").count()
    });
    let certs = certificates(nodes)?;
    let (reconcile, out) = server("apply", &path, &etcd, duty.as_deref())?;
    ensure!(
        out.contains("No changes"),
        "the second apply was not a no-change reconcile: {out}"
    );
    let (read_floor, objects) = read_auth_state(&etcd).await?;
    let run = CalsegRun {
        nodes,
        apply,
        changes,
        rebuilding,
        certs,
        reconcile,
        read_floor,
        objects,
    };
    println!(
        "calseg {nodes:>5} nodes x 3: apply {:.2} s ({changes} changes, {:.2} ms/change, {:.2} cache-rebuilding changes per identity) + certificates {:.2} s = {:.2} s; no-change reconcile {:.2} s (read floor {:.2} s, {objects} roles+users)",
        secs(apply),
        secs(apply) * 1000.0 / changes.max(1) as f64,
        rebuilding as f64 / (3 * nodes).max(1) as f64,
        secs(certs),
        secs(run.total()),
        secs(reconcile),
        secs(read_floor)
    );
    Ok((run, etcd))
}

fn print_manual(run: &ManualRun) {
    let how = match &run.method {
        ManualMethod::Full => "measured in full".to_owned(),
        ManualMethod::Sampled { k, from_nodes, .. } => format!(
            "SAMPLED {k} of {} nodes (x2 fills), extrapolated from the full run at {from_nodes}",
            run.nodes
        ),
    };
    println!(
        "manual {:>5} nodes x 3: {:.2} s (etcdctl {:.2} s for {} invocations, cfssl {:.2} s for {} certificates); {how}",
        run.nodes,
        secs(run.total),
        secs(run.etcdctl),
        run.operations,
        secs(run.cfssl),
        run.certificates
    );
}

/// The per-node time of `k` more nodes on `etcd` (shared roles are made first, untimed).
fn sample(etcd: &EtcdCluster, k: usize, tag: &str, shared: bool) -> Result<Duration> {
    let mut manual = Manual::new(etcd)?;
    if shared {
        manual.shared_roles()?;
    }
    let before = manual.total();
    for i in 0..k {
        manual.node(&format!("sample-{tag}-{i}"))?;
    }
    Ok((manual.total() - before) / k.max(1) as u32)
}

/// Runs every size: calseg, then the manual procedure (full or sampled).
pub async fn run(sizes: &Sizes) -> Result<RbacResult> {
    crate::prereq::etcd_tool("etcdctl");
    crate::prereq::require_command("cfssl", "golang-cfssl");
    let mut result = RbacResult {
        calseg: Vec::new(),
        manual: Vec::new(),
    };
    // The largest full manual run and its per-node time at its fill.
    let mut anchor: Option<(ManualRun, Duration)> = None;
    for &nodes in &sizes.nodes {
        let (run, calseg_etcd) = calseg(nodes).await?;
        result.calseg.push(run);
        let manual = if nodes <= sizes.manual_full_max {
            let etcd = EtcdCluster::start().await?;
            let mut manual = Manual::new(&etcd)?;
            manual.shared_roles()?;
            for i in 0..nodes {
                manual.node(&format!("node-{i}"))?;
            }
            let run = ManualRun {
                nodes,
                total: manual.total(),
                etcdctl: manual.etcdctl,
                cfssl: manual.cfssl,
                operations: manual.operations,
                certificates: manual.certificates,
                method: ManualMethod::Full,
            };
            if sizes.nodes.iter().any(|&n| n > sizes.manual_full_max)
                && anchor.as_ref().is_none_or(|(a, _)| a.nodes < nodes)
            {
                anchor = Some((run.clone(), sample(&etcd, sizes.sample, "low", false)?));
            }
            run
        } else {
            let (from, low) = anchor
                .clone()
                .context("no full manual run to extrapolate from: raise manual_full_max")?;
            let high = sample(&calseg_etcd, sizes.sample, "high", true)?;
            let extra = (nodes - from.nodes) as f64;
            let added = Duration::from_secs_f64(extra * (secs(low) + secs(high)) / 2.0);
            let total = from.total + added;
            let share = secs(from.etcdctl) / secs(from.total).max(1e-9);
            ManualRun {
                nodes,
                total,
                etcdctl: total.mul_f64(share),
                cfssl: total.mul_f64(1.0 - share),
                operations: from.operations + (nodes - from.nodes) * 9,
                certificates: nodes * 3,
                method: ManualMethod::Sampled {
                    k: sizes.sample,
                    from_nodes: from.nodes,
                    per_node_low: low,
                    per_node_high: high,
                },
            }
        };
        print_manual(&manual);
        if let Some(c) = result.calseg.last() {
            println!(
                "ratio at {nodes} nodes: manual / calseg = {:.1}x",
                secs(manual.total) / secs(c.total()).max(1e-9)
            );
        }
        result.manual.push(manual);
    }
    Ok(result)
}
