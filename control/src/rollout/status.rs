//! Rollout convergence: which approved nodes report the manifest revision the policy for them
//! gives them (converged), an older one or none yet (pending), or errors (failed), and how the
//! waves of the latest rollout in waves stand: pure functions of the policies and the node
//! records, and the status the admin route serves.

use super::{Health, node_health};
use crate::ControlError;
use crate::inventory::{Convergence, InventoryRow, Summary, summary_of};
use crate::manifest::{Trust, manifest_for};
use crate::policy::Policy;
use crate::state::Control;
use crate::store::{NodeRecord, NodeState, RolloutRecord};
use calseg_api::rollout::{RolloutStatus, WaveRollout, WaveStatus};
use std::collections::HashMap;
use std::sync::Arc;

/// How many policy revisions the rollout status lists.
const HISTORY: usize = 10;

/// `record`'s standing, given its report `summary` and its `current` manifest revision (`None`:
/// no manifest). `None` for nodes that are not approved: nothing is rolled out to them.
pub fn convergence(
    record: &NodeRecord,
    summary: &Summary,
    current: Option<&str>,
) -> Option<Convergence> {
    if record.state != NodeState::Approved {
        return None;
    }
    Some(match current {
        None => Convergence::Unassigned,
        Some(_) if !summary.errors.is_empty() => Convergence::Failed,
        Some(current) if summary.revision.as_deref() == Some(current) => Convergence::Converged,
        Some(_) => Convergence::Pending,
    })
}

/// Adds each row's current manifest revision and convergence (inventory of `/v1/admin/nodes`);
/// `policy_for` gives each node's policy (they differ during a rollout in waves).
pub fn annotate(
    rows: &mut [InventoryRow],
    policy_for: &dyn Fn(&str) -> Arc<Policy>,
    trust: &Trust<'_>,
) {
    for row in rows {
        let policy = policy_for(&row.record.name);
        let current = manifest_for(&policy, &row.record.name, row.record.generation, trust)
            .map(|m| m.revision);
        row.convergence = convergence(&row.record, &row.inventory, current.as_deref());
        row.current_revision = current;
    }
}

/// Counts the approved nodes of `records` by convergence.
pub fn status(
    policy: &Policy,
    policy_revision: Option<u64>,
    trust: &Trust<'_>,
    records: &[NodeRecord],
) -> RolloutStatus {
    status_per_node(&|_| policy, policy_revision, trust, records)
}

/// [`status`], with `policy_for` giving each node's policy.
fn status_per_node<'p>(
    policy_for: &dyn Fn(&str) -> &'p Policy,
    policy_revision: Option<u64>,
    trust: &Trust<'_>,
    records: &[NodeRecord],
) -> RolloutStatus {
    let mut status = RolloutStatus {
        policy_revision,
        ..RolloutStatus::default()
    };
    for record in records {
        let current = manifest_for(
            policy_for(&record.name),
            &record.name,
            record.generation,
            trust,
        )
        .map(|m| m.revision);
        let Some(standing) = convergence(record, &summary_of(record), current.as_deref()) else {
            continue;
        };
        status.approved += 1;
        match standing {
            Convergence::Converged => status.converged += 1,
            Convergence::Pending => {
                status.pending += 1;
                status.pending_nodes.push(record.name.clone());
            }
            Convergence::Failed => {
                status.failed += 1;
                status.failed_nodes.push(record.name.clone());
            }
            Convergence::Unassigned => status.unassigned += 1,
        }
    }
    status
}

/// The waves of `record`, each node's health judged against the manifest `to` gives it
/// (`None`: that policy is no longer in force, so only sizes and times are shown).
pub fn waves(
    record: &RolloutRecord,
    to: Option<&Policy>,
    trust: &Trust<'_>,
    records: &[NodeRecord],
) -> WaveRollout {
    let health = to.map(|to| {
        move |node: &str, r: &NodeRecord| {
            let target = manifest_for(to, node, r.generation, trust).map(|m| m.revision);
            node_health(r, target.as_deref())
        }
    });
    match &health {
        Some(health) => wave_rollout(record, Some(health), records),
        None => wave_rollout(record, None::<&fn(&str, &NodeRecord) -> Health>, records),
    }
}

/// The waves of `record` with each known node's health as `health` judges it (`None`: sizes
/// and times only). A node the store does not hold counts as healthy.
pub fn wave_rollout<'r>(
    record: &RolloutRecord,
    health: Option<&impl Fn(&str, &NodeRecord) -> Health>,
    records: impl IntoIterator<Item = &'r NodeRecord>,
) -> WaveRollout {
    let by_name: HashMap<&str, &NodeRecord> =
        records.into_iter().map(|r| (r.name.as_str(), r)).collect();
    let waves = record
        .waves
        .iter()
        .enumerate()
        .map(|(i, nodes)| {
            let mut wave = WaveStatus {
                size: nodes.len(),
                opened_at: record.wave_opened_at.get(i).copied(),
                ..WaveStatus::default()
            };
            let Some(health) = health else {
                return wave;
            };
            for node in nodes {
                let judged = by_name
                    .get(node.as_str())
                    .map_or(Health::Healthy, |r| health(node, r));
                match judged {
                    Health::Healthy => wave.healthy += 1,
                    Health::Pending => wave.pending += 1,
                    Health::Failed => {
                        wave.failed += 1;
                        wave.failed_nodes.push(node.clone());
                    }
                }
            }
            wave
        })
        .collect();
    WaveRollout {
        from_revision: record.from_revision,
        to_revision: record.to_revision,
        state: record.state,
        opened_waves: record.opened_waves,
        total_waves: record.waves.len(),
        created_at: record.created_at,
        waves,
    }
}

/// The rollout status: convergence of every approved node to its policy, the latest rollout in
/// waves and the recent policy revisions.
pub async fn current_status(control: &Control) -> Result<RolloutStatus, ControlError> {
    let nodes = control.store(|s| s.nodes()).await?;
    status_of_nodes(control, &nodes).await
}

/// The rollout status for `nodes`, the store's nodes as the caller already read them (the
/// metrics scrape reads them once for its own gauges too).
pub async fn status_of_nodes(
    control: &Control,
    nodes: &[NodeRecord],
) -> Result<RolloutStatus, ControlError> {
    let (history, record) = control
        .store(|s| Ok((s.policy_revisions(HISTORY)?, s.rollout()?)))
        .await?;
    let (policy, revision) = control.policy_and_revision();
    let active = control.rollout();
    let trust = control.trust();
    let mut status = match &active {
        Some(active) => {
            let policy_for = |node: &str| -> &Policy {
                if active.serves_new(node) {
                    &policy
                } else {
                    &active.from
                }
            };
            status_per_node(&policy_for, revision, &trust, nodes)
        }
        None => status(&policy, revision, &trust, nodes),
    };
    status.history = history;
    status.waves = record.map(|record| {
        // The new policy is in memory while the rollout runs and after it is done.
        let to = (revision == Some(record.to_revision)).then_some(policy.as_ref());
        waves(&record, to, &trust, nodes)
    });
    Ok(status)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use time::OffsetDateTime;

    const POLICY: &str = r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = "calico-node"
[[hosts]]
match = "w-*"
components = ["calico-node"]
"#;

    fn node(name: &str, state: NodeState, report: Option<(&str, &[&str])>) -> NodeRecord {
        let at = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        NodeRecord {
            last_report: report.map(|(revision, errors)| {
                let json =
                    json!({"revision": revision, "identities": [], "units": [], "errors": errors});
                serde_json::from_value(json).unwrap()
            }),
            ..NodeRecord::new(name, state, at)
        }
    }

    #[test]
    fn nodes_are_counted_by_their_last_report_against_the_current_revision() {
        let policy = crate::policy::parse(POLICY, "policy.toml").unwrap();
        let current = manifest_for(&policy, "w-1", 0, "CA").unwrap().revision;
        let records = [
            node("w-1", NodeState::Approved, Some((&current, &[]))),
            node("w-2", NodeState::Approved, Some(("old", &[]))),
            node("w-3", NodeState::Approved, None),
            node("w-4", NodeState::Approved, Some((&current, &["boom"]))),
            node("w-5", NodeState::Pending, None),
            node("x-1", NodeState::Approved, None),
        ];
        let status = status(&policy, Some(4), &"CA".into(), &records);
        assert_eq!(status.policy_revision, Some(4));
        assert_eq!(
            (
                status.approved,
                status.converged,
                status.pending,
                status.failed,
                status.unassigned
            ),
            (5, 1, 2, 1, 1)
        );
        assert_eq!(status.pending_nodes, ["w-2", "w-3"]);
        assert_eq!(status.failed_nodes, ["w-4"]);
    }
}
