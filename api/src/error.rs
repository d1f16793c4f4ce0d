//! The body of every failed call: a stable kind for programs, a message for people.

use serde::{Deserialize, Serialize};

/// What went wrong, as the server says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable, machine-readable kind, e.g. `wrong_common_name`, `token_expired`.
    pub kind: String,
    /// What was wrong and what to do, for the operator.
    pub message: String,
}

/// The kind of the 403 a revoked node gets on every call it makes with its fleet certificate
/// (`calseg-server nodes revoke`): its etcd identities are gone, and only a new enrollment
/// (a new node token, `calseg-agent enroll --force`) brings it back. Distinct from other
/// refusals so the agent can say so instead of retrying.
pub const NODE_REVOKED: &str = "node_revoked";
