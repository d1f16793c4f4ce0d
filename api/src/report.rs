//! The agent's report after each cycle: what it installed and how its units are.

use serde::{Deserialize, Serialize};

/// One cycle's outcome on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The manifest revision the node converged to (or tried to).
    pub revision: String,
    pub identities: Vec<IdentityReport>,
    pub units: Vec<UnitReport>,
    /// Human-readable errors of this cycle; empty when it converged.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The installed state of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityReport {
    pub component: String,
    /// Hex serial of the installed certificate, if any.
    pub serial: Option<String>,
    /// RFC 3339 expiry of the installed certificate.
    pub not_after: Option<String>,
    /// `installed`, `unchanged`, `verify_failed`, `rolled_back`, `lease_denied`, `error`, or
    /// `refused` (the manifest is outside the agent's local limits; nothing was touched).
    pub status: String,
}

/// The state of one unit after the cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitReport {
    pub unit: String,
    pub active_state: String,
    pub n_restarts: u32,
    /// Whether this cycle restarted it.
    pub restarted: bool,
}
