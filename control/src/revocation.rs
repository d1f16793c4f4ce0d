//! `nodes revoke` tells the truth: after the node is marked revoked, the answer waits (bounded)
//! until none of its etcd users exists any more, and otherwise names the users still there and
//! why. A node's users are the users its issued certificates name, and every user the policy
//! template reads as that node's (any generation). `calseg_revocations_pending` counts the
//! revoked nodes that still have a user the template reads as theirs.

use crate::policy::Policy;
use crate::rbac::is_foreign_user;
use crate::state::Control;
use crate::store::{NodeRecord, NodeState};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// How long `nodes revoke` waits for the reconciler by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);
/// At most this long, whatever the request asks (admin requests time out at 30 s).
pub const MAX_WAIT: Duration = Duration::from_secs(25);
/// The first wait between two looks at etcd's users; it doubles up to [`MAX_POLL`], so a
/// long wait lists the users a few dozen times, not a hundred.
const POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(1);

/// An etcd user of a revoked node that still exists, and why (the type the CLI reads).
pub use calseg_api::admin::PendingEtcdUser as PendingUser;

/// Waits up to `wait` until `node`'s etcd users are gone; returns those still there. Without
/// etcd credentials nothing can be checked: one entry says so.
pub async fn wait_until_gone(control: &Control, node: &str, wait: Duration) -> Vec<PendingUser> {
    let deadline = Instant::now() + wait.min(MAX_WAIT);
    let name = node.to_owned();
    let issued: BTreeSet<String> = match control.store(move |s| s.issued_for_node(&name)).await {
        Ok(records) => records
            .into_iter()
            .filter(|r| r.component != "fleet")
            .map(|r| r.cn)
            .collect(),
        Err(error) => {
            return vec![PendingUser {
                user: "?".into(),
                reason: format!("cannot read its issued certificates: {}", error.message),
            }];
        }
    };
    let mut poll = POLL;
    loop {
        let pending = still_present(control, node, &issued).await;
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        // The revocation poked the reconciler; a pass under way is followed by another.
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(MAX_POLL);
    }
}

/// The etcd users of `node` (see the module doc) that exist now, each with the reason it is
/// still there.
async fn still_present(
    control: &Control,
    node: &str,
    issued: &BTreeSet<String>,
) -> Vec<PendingUser> {
    let Some(reconciler) = &control.reconciler else {
        return vec![PendingUser {
            user: "*".into(),
            reason: "this server has no etcd credentials ([etcd] in server.toml): it cannot \
                     delete or check the node's etcd users; delete them by hand"
                .into(),
        }];
    };
    let names = match reconciler.user_names().await {
        Ok(names) => names,
        Err(error) => {
            return vec![PendingUser {
                user: "?".into(),
                reason: format!("cannot list etcd's users: {error:#}"),
            }];
        }
    };
    let policies = policies(control);
    let mut pending = Vec::new();
    for user in names {
        if !issued.contains(&user) && !belongs(&policies, &user, node) {
            continue;
        }
        let reason = match reconciler.user_roles(&user).await {
            Ok(Some(roles)) if is_foreign_user(&roles) => format!(
                "calseg does not own it (roles: {}), so it does not delete it; delete it with \
                 `etcdctl user delete {user}`",
                roles.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            Ok(Some(_)) => "the reconciler has not deleted it yet (see the server's log for \
                            its last pass)"
                .to_owned(),
            Ok(None) => continue,
            Err(error) => format!("cannot read it: {error:#}"),
        };
        pending.push(PendingUser { user, reason });
    }
    pending
}

/// The policies users may have been made under: the one in force, and during a rollout in
/// waves the previous one.
fn policies(control: &Control) -> Vec<std::sync::Arc<Policy>> {
    let mut policies = vec![control.policy()];
    if let Some(active) = control.rollout() {
        policies.push(active.from);
    }
    policies
}

fn belongs(policies: &[std::sync::Arc<Policy>], user: &str, node: &str) -> bool {
    policies
        .iter()
        .any(|p| p.owner_of(user).is_some_and(|owner| owner.node == node))
}

/// How many revoked nodes still have an etcd user: `calseg_revocations_pending`.
pub async fn count_pending(control: &Control, records: &[NodeRecord]) -> Option<usize> {
    let reconciler = control.reconciler.as_ref()?;
    let revoked: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.state == NodeState::Revoked)
        .map(|r| r.name.as_str())
        .collect();
    if revoked.is_empty() {
        return Some(0);
    }
    let names = reconciler.user_names().await.ok()?;
    let policies = policies(control);
    let mut nodes = BTreeSet::new();
    for user in &names {
        for policy in &policies {
            if let Some(owner) = policy.owner_of(user)
                && revoked.contains(owner.node.as_str())
            {
                nodes.insert(owner.node);
            }
        }
    }
    Some(nodes.len())
}
