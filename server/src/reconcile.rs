//! Keeps etcd's users and roles in step with the policy and the enrolled nodes: which nodes
//! count, and a reconciler the running server drives on an interval, when poked (a node joined
//! or left), and on an administrator's request. Applies never overlap.

use crate::policy::Policy;
use crate::rbac::{self, ApplyReport, Plan};
use crate::store::{NodeRecord, NodeState};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

/// The nodes whose identities must exist in etcd: the policy's named nodes and the approved
/// enrolled nodes the policy gives a component, less nodes an operator denied or revoked.
pub fn desired_nodes(policy: &Policy, enrolled: &[NodeRecord]) -> BTreeSet<String> {
    let mut nodes = policy.nodes();
    for record in enrolled {
        match record.state {
            NodeState::Approved if !policy.components_for(&record.name).is_empty() => {
                nodes.insert(record.name.clone());
            }
            NodeState::Denied | NodeState::Revoked => {
                nodes.remove(&record.name);
            }
            _ => {}
        }
    }
    nodes
}

/// Plans and applies RBAC changes against one etcd, one apply at a time.
pub struct Reconciler {
    client: etcd_client::Client,
    endpoints: String,
    parallelism: usize,
    allow_auth_disabled: bool,
    running: Mutex<()>,
    wake: Notify,
}

impl Reconciler {
    pub fn new(
        client: etcd_client::Client,
        endpoints: String,
        parallelism: usize,
        allow_auth_disabled: bool,
    ) -> Self {
        Self {
            client,
            endpoints,
            parallelism,
            allow_auth_disabled,
            running: Mutex::new(()),
            wake: Notify::new(),
        }
    }

    /// Asks the background loop to run now.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// The plan for `policy` on `nodes`, after the pre-flight checks.
    pub async fn plan(
        &self,
        policy: &Policy,
        nodes: &BTreeSet<String>,
        adopt: bool,
    ) -> Result<Plan> {
        rbac::preflight(&self.client, &self.endpoints, self.allow_auth_disabled).await?;
        let live = rbac::read_live(&self.client, self.parallelism)
            .await
            .with_context(|| format!("read etcd's users and roles at {}", self.endpoints))?;
        Ok(rbac::diff(
            &rbac::desired_state(policy, nodes),
            &live,
            adopt,
        ))
    }

    /// Plans and applies; returns what was planned and done.
    pub async fn apply(
        &self,
        policy: &Policy,
        nodes: &BTreeSet<String>,
        adopt: bool,
    ) -> Result<(Plan, ApplyReport)> {
        let _one_at_a_time = self.running.lock().await;
        let plan = self.plan(policy, nodes, adopt).await?;
        let report = rbac::apply(&self.client, &plan, self.parallelism, &|_, _| {}).await?;
        Ok((plan, report))
    }

    /// Waits for the interval to pass or a poke, whichever comes first.
    pub async fn wait(&self, interval: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = self.wake.notified() => {}
        }
    }
}
