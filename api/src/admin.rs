//! Bodies of the admin API (administrator certificate only), used by `calseg-server`'s CLI.

use serde::{Deserialize, Serialize};

/// Create an enrollment token: for one node, or for up to `uses` nodes matching a glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    pub ttl_secs: u64,
}

/// A created token. `token` is the only copy of the secret: show it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub id: String,
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}
