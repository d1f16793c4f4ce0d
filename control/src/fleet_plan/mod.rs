//! The fleet plan of a policy: the etcd RBAC diff, and for each enrolled node the files its
//! agent would write, the units it would restart and the rollout wave it would land in. The
//! server computes it against the live fleet (`live`, `POST /v1/admin/rbac/plan`); `plan
//! --direct` fills only the RBAC part.
//! The shape is [`calseg_api::plan::FleetPlan`]; the server's CLI renders it for people.

mod live;
mod manifest_diff;

pub use live::plan;
pub use manifest_diff::diff as manifest_diff;

use crate::manifest::manifest_for;
use crate::policy::Policy;
use crate::rbac::{Change, Conflict, Plan};
use crate::store::{NodeRecord, NodeState};
use calseg_api::manifest::Manifest;
use calseg_api::plan::{NodePlan, RbacChange, RbacConflict, RbacDiff, RbacGrant};
use std::collections::BTreeMap;

/// The RBAC plan in the fleet plan's shape.
pub fn rbac_diff(plan: &Plan) -> RbacDiff {
    let changes = plan.changes.iter().map(rbac_change).collect();
    let conflicts = plan
        .conflicts
        .iter()
        .map(|conflict| match conflict {
            Conflict::ForeignUser { user, roles } => RbacConflict {
                kind: "foreign_user".into(),
                user: user.clone(),
                roles: roles.iter().cloned().collect(),
                text: conflict.to_string(),
            },
        })
        .collect();
    let counts = plan
        .counts()
        .into_iter()
        .map(|(kind, n)| (kind.to_owned(), n))
        .collect();
    RbacDiff {
        changes,
        conflicts,
        counts,
    }
}

fn rbac_change(change: &Change) -> RbacChange {
    let grant = |g: &crate::rbac::EtcdGrant| RbacGrant {
        key: String::from_utf8_lossy(&g.key).into_owned(),
        range_end: String::from_utf8_lossy(&g.range_end).into_owned(),
        prefix: g.is_prefix(),
        access: g.access,
    };
    let mut out = RbacChange {
        op: String::new(),
        user: None,
        role: None,
        grant: None,
        was: None,
        text: change.to_string(),
    };
    let (op, user, role) = match change {
        Change::RevokeRole { user, role } => ("revoke_role", Some(user), Some(role)),
        Change::RevokePermission { role, grant: g } => {
            out.grant = Some(grant(g));
            ("revoke_permission", None, Some(role))
        }
        Change::NarrowPermission {
            role,
            from,
            grant: g,
        } => {
            out.grant = Some(grant(g));
            out.was = Some(*from);
            ("narrow_permission", None, Some(role))
        }
        Change::DeleteUser { user } => ("delete_user", Some(user), None),
        Change::DeleteRole { role } => ("delete_role", None, Some(role)),
        Change::CreateRole { role } => ("create_role", None, Some(role)),
        Change::GrantPermission {
            role,
            grant: g,
            replaces,
        } => {
            out.grant = Some(grant(g));
            out.was = *replaces;
            ("grant_permission", None, Some(role))
        }
        Change::CreateUser { user } => ("create_user", Some(user), None),
        Change::GrantRole { user, role } => ("grant_role", Some(user), Some(role)),
    };
    out.op = op.to_owned();
    out.user = user.cloned();
    out.role = role.cloned();
    out
}

/// The per-node part of the plan: for each approved enrolled node, its manifest now (`served`)
/// against the one `candidate` gives it. A node is listed when its manifest revision would
/// change; `waves` (the rollout's waves, when the candidate would start one) gives its wave.
/// Returns the changed nodes in wave order then by name, and the unchanged nodes' names.
pub fn node_plans(
    candidate: &Policy,
    enrolled: &[NodeRecord],
    served: &dyn Fn(&NodeRecord) -> Option<Manifest>,
    etcd_ca_bundle_pem: &str,
    waves: Option<&[Vec<String>]>,
) -> (Vec<NodePlan>, Vec<String>) {
    let wave_of: BTreeMap<&str, u32> = waves
        .unwrap_or_default()
        .iter()
        .enumerate()
        .flat_map(|(i, nodes)| {
            let wave = u32::try_from(i + 1).unwrap_or(u32::MAX);
            nodes.iter().map(move |node| (node.as_str(), wave))
        })
        .collect();
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for record in enrolled.iter().filter(|r| r.state == NodeState::Approved) {
        let now = served(record);
        let planned = manifest_for(
            candidate,
            &record.name,
            record.generation,
            etcd_ca_bundle_pem,
        );
        let revision = |m: &Option<Manifest>| m.as_ref().map(|m| m.revision.clone());
        if revision(&now) == revision(&planned) {
            unchanged.push(record.name.clone());
            continue;
        }
        let (files, restart) = manifest_diff(now.as_ref(), planned.as_ref());
        changed.push(NodePlan {
            node: record.name.clone(),
            wave: wave_of.get(record.name.as_str()).copied(),
            revision_now: revision(&now),
            revision_planned: revision(&planned),
            files,
            restart,
        });
    }
    changed.sort_by(|a, b| {
        (a.wave.unwrap_or(u32::MAX), &a.node).cmp(&(b.wave.unwrap_or(u32::MAX), &b.node))
    });
    unchanged.sort();
    (changed, unchanged)
}

/// SHA-256 of `bytes`, as lowercase hex: a candidate policy's hash as the store records it,
/// and the content hashes of the plan's files.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
