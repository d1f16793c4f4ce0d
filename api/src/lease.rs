//! Restart leases: an agent asks for one before it restarts units, so the fleet never has more
//! units restarting at once than the policy's `[rollout] max_unavailable` allows.
//!
//! `POST` [`crate::paths::RESTART_LEASE`] with a [`LeaseRequest`] answers 200 with a
//! [`LeaseGrant`], or 429 with a `Retry-After` header (whole seconds) and an
//! [`ApiError`](crate::error::ApiError) of kind [`BUDGET_FULL`]. A node holds at most one live
//! lease: asking again while it holds one returns the same lease (retries are safe).

use serde::{Deserialize, Serialize};

/// The `ApiError::kind` of a refused lease: the restart budget is in use; retry after the
/// `Retry-After` header's seconds.
pub const BUDGET_FULL: &str = "restart_budget_full";

/// Asks for permission to restart `units`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// The units the agent is about to restart (for the operator's view; the budget counts
    /// leases, one per node).
    pub units: Vec<String>,
    /// The manifest revision being rolled out.
    pub revision: String,
}

/// A granted (or renewed) lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub lease_id: String,
    /// RFC 3339; after this the lease no longer counts and the server may grant its slot.
    pub expires_at: String,
    /// The lease's lifetime from now, in seconds: renew well before it runs out.
    pub ttl_secs: u64,
}

/// One live lease, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub node: String,
    pub units: Vec<String>,
    /// The host group whose budget the lease counts against, if any (`hosts[<index>]`).
    pub group: Option<String>,
    /// RFC 3339.
    pub granted_at: String,
    /// RFC 3339.
    pub expires_at: String,
}
