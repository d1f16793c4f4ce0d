//! Provisioning at fleet scale beside etcd's floor: for each N, `calseg-server apply` from
//! scratch on a fresh etcd, then the exact operations that apply made, replayed by a bare loop
//! (one at a time, root client, no pacing, no process start, no reading or diffing) on another
//! fresh etcd. The ratio says what calseg adds over the cost etcd itself puts on those
//! operations; the operations per identity say how many etcd charges a full permission-cache
//! rebuild for.
//!
//! One identity per node: calico-node with its per-node grants (`calico-node-per-node`), the
//! component that costs the most operations. Three components per node triple the users, and
//! etcd's cost per operation grows with the users (see `docs/benchmarks.md` §1), so 10,000
//! nodes x 3 do not fit the large run's 90 minutes on 2 cores.
//! calseg runs unpaced (`--auth-change-duty 1`): pacing adds time by design, and what it buys is
//! measured by [`super::calico_traffic`].

use super::rbac::server;
use super::secs;
use crate::etcd::EtcdCluster;
use anyhow::{Context, Result, bail, ensure};
use calseg_api::access::Access;
use calseg_server::rbac::DEFAULT_PARALLELISM;
use etcd_client::{Client, Permission, PermissionType, UserAddOptions};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// The component each node runs here, and its grant table.
const COMPONENT: (&str, &str) = ("calico-node", "calico-node-per-node");

/// One size: calseg beside the floor.
#[derive(Debug, Clone)]
pub struct FloorRun {
    pub nodes: usize,
    /// `calseg-server apply` from scratch, unpaced.
    pub calseg: Duration,
    /// The same operations, replayed by a bare loop on a fresh etcd.
    pub floor: Duration,
    /// Operations applied (both sides make the same ones).
    pub changes: usize,
    /// Of those, the ones that make etcd rebuild its permission cache (all but role adds).
    pub rebuilding: usize,
}

impl FloorRun {
    /// calseg's time over the floor's.
    pub fn ratio(&self) -> f64 {
        secs(self.calseg) / secs(self.floor).max(1e-9)
    }

    /// Cache-rebuilding operations per identity (one identity per node here).
    pub fn rebuilding_per_identity(&self) -> f64 {
        self.rebuilding as f64 / self.nodes.max(1) as f64
    }
}

/// A policy giving `names` the one component [`COMPONENT`].
pub fn policy(endpoint: &str, names: &[String]) -> String {
    let (component, table) = COMPONENT;
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"{endpoint}\"]\n\
         [components.{component}]\ngrants = \"{table}\"\n\
         [[hosts]]\nnames = [{}]\ncomponents = [\"{component}\"]\n",
        quoted.join(", ")
    )
}

/// Node names `node-{first}`…`node-{first + count - 1}`.
pub fn names(first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|i| format!("node-{i}"))
        .collect()
}

/// What `apply --json` did: its change list.
pub(crate) struct Applied {
    pub changes: Vec<serde_json::Value>,
}

impl Applied {
    /// Parses `calseg-server apply --json`'s output; every change must have been applied.
    pub fn parse(out: &str) -> Result<Self> {
        let json: serde_json::Value =
            serde_json::from_str(out.trim()).context("apply --json output")?;
        let changes = json["plan"]["changes"]
            .as_array()
            .context("apply --json without plan.changes")?
            .clone();
        let applied = json["applied"].as_u64().unwrap_or(0) as usize;
        ensure!(
            applied == changes.len(),
            "apply made {applied} of {} changes",
            changes.len()
        );
        Ok(Self { changes })
    }

    /// Changes that make etcd rebuild its permission cache: all but role adds.
    pub fn rebuilding(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c["op"] != "create_role")
            .count()
    }
}

/// Applies `policy_text` with `calseg-server apply` at `duty`; returns its time and changes.
pub(crate) async fn apply(
    etcd: &EtcdCluster,
    policy_text: String,
    duty: &str,
) -> Result<(Duration, Applied)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text)?;
    let (took, out) = tokio::task::block_in_place(|| server("apply", &path, etcd, Some(duty)))?;
    Ok((took, Applied::parse(&out)?))
}

/// Replays a from-scratch apply's changes with a root client: each run of changes of one kind
/// (apply's stages) with [`DEFAULT_PARALLELISM`] in flight, the runs one after the other.
async fn replay(client: &Client, changes: &[serde_json::Value]) -> Result<Duration> {
    let started = Instant::now();
    for stage in changes.chunk_by(|a, b| a["op"] == b["op"]) {
        let results: Vec<Result<()>> = futures::stream::iter(stage)
            .map(|change| {
                let mut client = client.clone();
                async move { replay_one(&mut client, change).await }
            })
            .buffer_unordered(DEFAULT_PARALLELISM)
            .collect()
            .await;
        results.into_iter().collect::<Result<()>>()?;
    }
    Ok(started.elapsed())
}

/// One change, as etcd's client crate sends it.
async fn replay_one(client: &mut Client, change: &serde_json::Value) -> Result<()> {
    let text = |change: &serde_json::Value, field: &str| -> Result<String> {
        change[field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("change without {field}: {change}"))
    };
    match change["op"].as_str() {
        Some("create_role") => {
            client.role_add(text(change, "role")?).await?;
        }
        Some("create_user") => {
            let options = Some(UserAddOptions::new().with_no_pwd());
            client.user_add(text(change, "user")?, "", options).await?;
        }
        Some("grant_role") => {
            client
                .user_grant_role(text(change, "user")?, text(change, "role")?)
                .await?;
        }
        Some("grant_permission") => {
            let grant = &change["grant"];
            let access = grant["access"]
                .as_str()
                .and_then(Access::parse)
                .with_context(|| format!("grant without access: {grant}"))?;
            let kind = match access {
                Access::Read => PermissionType::Read,
                Access::Write => PermissionType::Write,
                Access::ReadWrite => PermissionType::Readwrite,
            };
            let mut permission = Permission::new(kind, text(grant, "key")?);
            let end = text(grant, "range_end")?;
            if !end.is_empty() {
                permission = permission.with_range_end(end);
            }
            client
                .role_grant_permission(text(change, "role")?, permission)
                .await?;
        }
        other => bail!("a from-scratch apply made an unexpected change {other:?}"),
    }
    Ok(())
}

/// calseg and the floor at `nodes`.
pub async fn at(nodes: usize) -> Result<FloorRun> {
    let etcd = EtcdCluster::start().await?;
    let (calseg, applied) = apply(&etcd, policy(&etcd.endpoint(0), &names(0, nodes)), "1").await?;
    drop(etcd);
    let etcd = EtcdCluster::start().await?;
    let client = etcd.root_client().await?;
    let floor = replay(&client, &applied.changes).await?;
    let run = FloorRun {
        nodes,
        calseg,
        floor,
        changes: applied.changes.len(),
        rebuilding: applied.rebuilding(),
    };
    println!(
        "{nodes:>6} nodes x 1: calseg {:.1} s, floor {:.1} s, calseg / floor {:.2}x; {} operations, {:.2} ms each on the floor, {:.2} cache-rebuilding per identity",
        secs(calseg),
        secs(floor),
        run.ratio(),
        run.changes,
        secs(floor) * 1000.0 / run.changes.max(1) as f64,
        run.rebuilding_per_identity()
    );
    Ok(run)
}
