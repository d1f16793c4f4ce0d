//! Keeps etcd's users and roles in step with the policy and the enrolled nodes: which nodes
//! count, and a reconciler the running server drives on an interval, when poked (a node joined
//! or left), and on an administrator's request. Applies never overlap.

use crate::etcd_release::Monitor;
use crate::policy::Policy;
use crate::rbac::{self, ApplyReport, AuthState, NodeGenerations, Plan};
use crate::store::{NodeRecord, NodeState};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

/// The nodes whose identities must exist in etcd, with their enrollment generation: the
/// policy's named nodes and the approved enrolled nodes the policy gives a component, less nodes
/// an operator denied or revoked.
pub fn desired_nodes(policy: &Policy, enrolled: &[NodeRecord]) -> NodeGenerations {
    let mut nodes = rbac::first_generation(policy.nodes());
    for record in enrolled {
        match record.state {
            NodeState::Approved if !policy.components_for(&record.name).is_empty() => {
                nodes.insert(record.name.clone(), record.generation);
            }
            NodeState::Denied | NodeState::Revoked => {
                nodes.remove(&record.name);
            }
            _ => {
                if let Some(generation) = nodes.get_mut(&record.name) {
                    *generation = record.generation;
                }
            }
        }
    }
    nodes
}

/// The previous policy of a rollout in waves, and whether a node gets the new one.
pub type InRollout<'a> = (&'a Policy, &'a dyn Fn(&str) -> bool);

/// What etcd must hold. Without a rollout in waves: [`rbac::desired_state`] of `policy` on the
/// [`desired_nodes`]. During one (`rollout` = the previous policy and which nodes get the new
/// one): each node's users and per-node roles follow the policy the node gets, and the shared
/// roles `calseg.{component}` hold the union of both policies' grants.
///
/// Known trade-off: a shared role is one etcd role for every node, so while the rollout runs,
/// nodes still on the previous policy also hold grants only the new policy adds (and the other
/// way round). Once the rollout is done (or rolled back) the single policy's grants are back.
pub fn desired_rbac(
    policy: &Policy,
    rollout: Option<InRollout<'_>>,
    enrolled: &[NodeRecord],
) -> AuthState {
    let Some((from, serves_new)) = rollout else {
        return rbac::desired_state(policy, &desired_nodes(policy, enrolled));
    };
    let to_nodes: NodeGenerations = desired_nodes(policy, enrolled)
        .into_iter()
        .filter(|(n, _)| serves_new(n))
        .collect();
    let from_nodes: NodeGenerations = desired_nodes(from, enrolled)
        .into_iter()
        .filter(|(n, _)| !serves_new(n))
        .collect();
    let mut state = rbac::desired_state(policy, &to_nodes);
    let old = rbac::desired_state(from, &from_nodes);
    for (role, grants) in old.roles {
        state.roles.entry(role).or_default().extend(grants);
    }
    for (user, roles) in old.users {
        state.users.entry(user).or_default().extend(roles);
    }
    // Shared roles are one role for all nodes: both policies' grants while the rollout runs.
    for component in from.components.values() {
        if component.grants.is_empty() {
            continue;
        }
        let shared = Policy::shared_role(&component.name);
        if let Some(grants) = state.roles.get_mut(&shared) {
            grants.extend(component.grants.iter().map(rbac::EtcdGrant::from));
        }
    }
    for component in policy.components.values() {
        let shared = Policy::shared_role(&component.name);
        if let Some(grants) = state.roles.get_mut(&shared) {
            grants.extend(component.grants.iter().map(rbac::EtcdGrant::from));
        }
    }
    state
}

/// Plans and applies RBAC changes against one etcd, one apply at a time.
pub struct Reconciler {
    client: etcd_client::Client,
    endpoints: String,
    /// How applies pace their auth changes; its `max_in_flight` also bounds reads.
    pacing: rbac::Pacing,
    allow_auth_disabled: bool,
    /// etcd's releases; with `refuse_known_bypasses`, applies wait for a cluster without
    /// known RBAC bypasses.
    release: Arc<Monitor>,
    running: Mutex<()>,
    wake: Notify,
}

impl Reconciler {
    pub fn new(
        client: etcd_client::Client,
        endpoints: String,
        pacing: rbac::Pacing,
        allow_auth_disabled: bool,
        release: Arc<Monitor>,
    ) -> Self {
        Self {
            client,
            endpoints,
            pacing,
            allow_auth_disabled,
            release,
            running: Mutex::new(()),
            wake: Notify::new(),
        }
    }

    /// Asks the background loop to run now.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// etcd's releases as the latest check found them.
    pub fn release(&self) -> &Arc<Monitor> {
        &self.release
    }

    /// The plan for `policy` on `nodes`, after the pre-flight checks.
    pub async fn plan(
        &self,
        policy: &Policy,
        nodes: &NodeGenerations,
        adopt: bool,
    ) -> Result<Plan> {
        self.plan_desired(&rbac::desired_state(policy, nodes), adopt)
            .await
    }

    /// The plan to make etcd hold `desired`, after the pre-flight checks.
    pub async fn plan_desired(&self, desired: &AuthState, adopt: bool) -> Result<Plan> {
        rbac::preflight(&self.client, &self.endpoints, self.allow_auth_disabled).await?;
        let live = rbac::read_live(&self.client, self.pacing.max_in_flight)
            .await
            .with_context(|| format!("read etcd's users and roles at {}", self.endpoints))?;
        Ok(rbac::diff(desired, &live, adopt))
    }

    /// Plans and applies; returns what was planned and done.
    pub async fn apply(
        &self,
        policy: &Policy,
        nodes: &NodeGenerations,
        adopt: bool,
    ) -> Result<(Plan, ApplyReport)> {
        self.apply_desired(&rbac::desired_state(policy, nodes), adopt)
            .await
    }

    /// Plans and applies `desired`; returns what was planned and done. Refused while
    /// `refuse_known_bypasses` is set and a member has a known RBAC bypass.
    pub async fn apply_desired(
        &self,
        desired: &AuthState,
        adopt: bool,
    ) -> Result<(Plan, ApplyReport)> {
        self.release.gate()?;
        let _one_at_a_time = self.running.lock().await;
        let plan = self.plan_desired(desired, adopt).await?;
        let report = rbac::apply(&self.client, &plan, self.pacing, &|_, _| {}).await?;
        Ok((plan, report))
    }

    /// The roles of the etcd user `user`, or `None` when etcd has no such user.
    pub async fn user_roles(&self, user: &str) -> Result<Option<BTreeSet<String>>> {
        let fetched = rbac::with_retry(|| {
            let mut client = self.client.clone();
            async move { client.user_get(user).await }
        })
        .await;
        match fetched {
            Ok(response) => Ok(Some(response.roles().iter().cloned().collect())),
            Err(error) if rbac::is_not_found(&error) => Ok(None),
            Err(error) => Err(error)
                .with_context(|| format!("read the etcd user {user} at {}", self.endpoints)),
        }
    }

    /// Every etcd user's name.
    pub async fn user_names(&self) -> Result<Vec<String>> {
        let listed = rbac::with_retry(|| {
            let mut client = self.client.clone();
            async move { client.user_list().await }
        })
        .await
        .with_context(|| format!("list etcd's users at {}", self.endpoints))?;
        Ok(listed.users().to_vec())
    }

    /// Waits for the interval to pass or a poke, whichever comes first.
    pub async fn wait(&self, interval: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = self.wake.notified() => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rbac::EtcdGrant;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://127.0.0.1:2379\"]\n\
             [components.c]\ngrants = [ {{ prefix = \"/shared/\", access = \"read\" }}{extra} ]\n\
             node_grants = [ {{ prefix = \"/node/{{node}}/\", access = \"readwrite\" }} ]\n\
             [[hosts]]\nnames = [\"a\", \"b\"]\ncomponents = [\"c\"]\n"
        );
        crate::policy::parse(&text, "p.toml").unwrap()
    }

    fn keys(grants: &BTreeSet<EtcdGrant>) -> Vec<String> {
        grants
            .iter()
            .map(|g| String::from_utf8_lossy(&g.key).into_owned())
            .collect()
    }

    #[test]
    fn during_a_rollout_shared_roles_hold_both_policies_grants() {
        let from = policy("");
        let to = policy(", { prefix = \"/new/\", access = \"read\" }");
        let shared = Policy::shared_role("c");
        let alone = desired_rbac(&to, None, &[]);
        assert_eq!(keys(&alone.roles[&shared]), ["/new/", "/shared/"]);
        let only_a = |node: &str| node == "a";
        let during = desired_rbac(&to, Some((&from, &only_a)), &[]);
        assert_eq!(keys(&during.roles[&shared]), ["/new/", "/shared/"]);
        let before = desired_rbac(&from, None, &[]);
        assert_eq!(keys(&before.roles[&shared]), ["/shared/"]);
        // Per-node roles and users exist for both nodes, each from its own policy.
        assert!(during.roles.contains_key(&Policy::node_role("c", "a")));
        assert!(during.roles.contains_key(&Policy::node_role("c", "b")));
        assert_eq!(during.users.len(), 2);
    }
}
