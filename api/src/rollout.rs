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
    /// The latest rollout in waves, if the server ever ran one.
    #[serde(default)]
    pub waves: Option<WaveRollout>,
    /// The server's latest check of etcd's releases, one line, e.g. "etcd 3.4.23 on 3/3
    /// members: 5 known RBAC bypasses"; absent when the server does not manage etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<String>,
}

/// Where a rollout in waves stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Waves open as the previous ones turn healthy and bake.
    Running,
    /// Stopped by an operator or by failures; `resume` goes on.
    Paused,
    /// No more waves open; nodes keep what they have.
    Aborted,
    /// Every wave opened and healthy: the new policy is the only one.
    Done,
    /// Every node was sent back to the previous policy.
    RolledBack,
}

impl RolloutState {
    /// Whether the rollout can still change (open waves, be resumed or rolled back).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::RolledBack)
    }
}

impl std::fmt::Display for RolloutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Aborted => "aborted",
            Self::Done => "done",
            Self::RolledBack => "rolled_back",
        })
    }
}

/// One wave of a rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveStatus {
    /// Nodes in the wave.
    pub size: usize,
    /// Unix seconds when the wave opened; `None` while closed.
    pub opened_at: Option<i64>,
    /// Reported the new policy's manifest without errors.
    pub healthy: usize,
    /// Not (yet) reported the new policy's manifest.
    pub pending: usize,
    /// Reported errors with the new policy's manifest.
    pub failed: usize,
    /// Names of the failed nodes.
    #[serde(default)]
    pub failed_nodes: Vec<String>,
}

/// The latest rollout in waves, from one policy revision to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRollout {
    pub from_revision: u64,
    pub to_revision: u64,
    pub state: RolloutState,
    pub opened_waves: usize,
    pub total_waves: usize,
    /// Unix seconds when the rollout started.
    pub created_at: i64,
    pub waves: Vec<WaveStatus>,
}

/// What `POST /v1/admin/rollout/{action}` may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    Pause,
    Resume,
    Abort,
    Rollback,
}

impl RolloutAction {
    /// Every action, in the order the route's refusal lists them.
    pub const ALL: [Self; 4] = [Self::Pause, Self::Resume, Self::Abort, Self::Rollback];

    /// Parses the `{action}` of the route.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == text)
    }

    /// The `{action}` of the route.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Abort => "abort",
            Self::Rollback => "rollback",
        }
    }
}
