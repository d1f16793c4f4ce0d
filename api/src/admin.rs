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

/// The body of `POST /v1/admin/nodes/<node>/<action>` (may be empty for deny and revoke).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAction {
    /// For approve: the fingerprint (`sha256:<hex>`) of the one key that may enroll, as the
    /// node's agent printed it. Required: approving a name alone would let whoever asked
    /// first (or last) with that name in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}
