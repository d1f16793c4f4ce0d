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
