//! Policy revisions and rollout convergence, as `GET /v1/admin/rollout` returns them.
//!
//! Every distinct policy the server runs gets the next revision number (1, 2, 3, ...), kept in
//! the server's store so a restart with the same policy keeps its number. A node has converged
//! when its agent's last report names the manifest revision the current policy gives it and
//! carries no errors.

use serde::{Deserialize, Serialize};

/// One policy the server has run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRevision {
    /// 1, 2, 3, ... in the order the server first ran each policy.
    pub revision: u64,
    /// SHA-256 (hex) of the policy file's text.
    pub hash: String,
    /// Unix seconds when the server first ran it.
    pub first_seen: i64,
}

/// How far the approved nodes are with the current policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The policy in force; `None` if the server could not record it.
    pub policy_revision: Option<u64>,
    /// Approved nodes.
    pub approved: usize,
    /// Reported the manifest revision the current policy gives them, without errors.
    pub converged: usize,
    /// Not reported yet, or reported an older revision without errors.
    pub pending: usize,
    /// The last report has errors.
    pub failed: usize,
    /// Approved nodes the policy gives no component (nothing to converge to).
    pub unassigned: usize,
    /// Names of the pending nodes, by name.
    #[serde(default)]
    pub pending_nodes: Vec<String>,
    /// Names of the failed nodes, by name.
    #[serde(default)]
    pub failed_nodes: Vec<String>,
    /// The most recent policy revisions, newest first.
    #[serde(default)]
    pub history: Vec<PolicyRevision>,
}
