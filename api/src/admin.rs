//! Bodies of the admin API (administrator certificate only): what the server answers and
//! `calseg-server`'s CLI reads, one type on both sides.

use crate::report::LastReport;
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

/// The body of `POST /v1/admin/components/<component>/certificate`: a CSR for the component's
/// component-wide identity, made where the key stays (the key never reaches the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSign {
    /// PEM CSR; its CN must be the component's component-wide etcd user.
    pub csr_pem: String,
}

/// The answer: the certificate and what a Kubernetes Secret for the component needs beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSigned {
    /// The etcd user (= the certificate's CN).
    pub etcd_user: String,
    pub cert_pem: String,
    /// The CA bundle components verify etcd's server certificate with (`etcd-ca`).
    pub ca_pem: String,
    /// The policy's etcd endpoints (`etcd_endpoints` of Calico's ConfigMap).
    pub etcd_endpoints: Vec<String>,
    /// The built-in grant table the component's grants come from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Hex serial.
    pub serial: String,
    /// RFC 3339.
    pub not_after: String,
}

/// What the inventory shows of one node beyond its record: the `inventory` of each entry of
/// `GET /v1/admin/nodes`. The server builds it from the node's last report; the CLI's table
/// reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInventory {
    /// The manifest revision of the last report; `None` before the first report.
    pub revision: Option<String>,
    /// Installed certificates, earliest expiry first.
    pub certificates: Vec<InstalledCertificate>,
    /// Units not `active` after the last cycle, as `unit (state)`.
    pub failed_units: Vec<String>,
    /// How many units the last report covered (to tell "all active" from "none reported").
    pub units_reported: usize,
    /// The last report's errors (or why the report could not be read).
    pub errors: Vec<String>,
    /// Identities whose status is not installed/unchanged, as `component: status`.
    pub unconverged: Vec<String>,
    /// `errors` or `failed_units` non-empty: the `--failed` filter.
    pub failed: bool,
    /// `errors` or `unconverged` non-empty: the node is not what its manifest says.
    pub drift: bool,
}

impl NodeInventory {
    /// Installed certificates whose expiry is at most `within_secs` away (or already past).
    pub fn expiring_within(&self, within_secs: u64, now: time::OffsetDateTime) -> usize {
        let limit = now
            .unix_timestamp()
            .saturating_add(i64::try_from(within_secs).unwrap_or(i64::MAX));
        self.certificates
            .iter()
            .filter(|c| c.not_after <= limit)
            .count()
    }
}

/// One installed certificate, as the agent reported it (its date as the server issued it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledCertificate {
    pub component: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// A node as the admin API answers about it, as the CLI reads it: each entry of `GET
/// /v1/admin/nodes` (the node's record with its [`NodeInventory`]), `GET
/// /v1/admin/nodes/<node>` (also its `identities`), and the record `approve` and `delete`
/// answer (no inventory). `-o json` prints the answer as sent; other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeListing {
    pub name: String,
    /// `pending`, `approved`, `denied` or `revoked`.
    pub state: String,
    /// Unix seconds.
    pub enrolled_at: i64,
    /// Unix seconds; `None`: never seen.
    #[serde(default)]
    pub last_seen: Option<i64>,
    /// `token:<id>`, `admin:<who>` or `auto:<glob>`.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// The one key waiting to enroll without a token.
    #[serde(default)]
    pub pending_key: Option<PendingKeyListing>,
    #[serde(default)]
    pub fleet_cert: Option<FleetCertListing>,
    #[serde(default)]
    pub last_report: Option<LastReport>,
    /// Empty in the record `approve` and `delete` answer.
    #[serde(default)]
    pub inventory: NodeInventory,
    /// The manifest revision the current policy gives the node.
    #[serde(default)]
    pub current_revision: Option<String>,
    /// `nodes show` only: the newest certificate issued per component.
    #[serde(default)]
    pub identities: Vec<IssuedIdentity>,
}

/// The key waiting to enroll a pending node, and where its request came from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PendingKeyListing {
    /// `sha256:<hex>`, as the node's agent prints it.
    pub fingerprint: String,
    pub source: String,
}

/// A node's fleet certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FleetCertListing {
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
    /// `sha256:<hex>` of its key, as the agent prints it (absent in older records).
    #[serde(default)]
    pub key_fingerprint: Option<String>,
}

/// The newest certificate issued to a node for one component (`nodes show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedIdentity {
    pub component: String,
    /// The certificate's CN.
    pub etcd_user: String,
    pub serial: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
}

/// The filters of `GET /v1/admin/nodes`, sent as its query string; a node must pass every one
/// given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFilter {
    /// Has an installed certificate expiring within this many seconds.
    pub expiring_within_secs: Option<u64>,
    /// The last report has errors or units that are not active.
    #[serde(default)]
    pub failed: bool,
    /// Not seen for longer than this many seconds, or never.
    pub not_seen_since_secs: Option<u64>,
}

impl NodeFilter {
    /// The query string, `?` included; empty without filters.
    pub fn query(&self) -> String {
        let mut query = Vec::new();
        if let Some(secs) = self.expiring_within_secs {
            query.push(format!("expiring_within_secs={secs}"));
        }
        if self.failed {
            query.push("failed=true".to_owned());
        }
        if let Some(secs) = self.not_seen_since_secs {
            query.push(format!("not_seen_since_secs={secs}"));
        }
        if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        }
    }
}

/// What `token list` shows of one entry of `GET /v1/admin/tokens` (never the secret or its
/// hash); `-o json` prints the answer as sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenListing {
    pub id: String,
    pub scope: TokenListingScope,
    /// The nodes that redeemed it, in order.
    #[serde(default)]
    pub uses: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default)]
    pub created_by: String,
}

/// Which nodes a listed token lets in: `{"node": NAME}` or `{"match": {"glob", "uses_max"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenListingScope {
    Node(String),
    Match { glob: String, uses_max: u32 },
}

impl TokenListing {
    /// How many redemptions the token allows in total.
    pub fn uses_max(&self) -> u32 {
        match &self.scope {
            TokenListingScope::Node(_) => 1,
            TokenListingScope::Match { uses_max, .. } => *uses_max,
        }
    }
}

/// The answer of `DELETE /v1/admin/tokens/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDeleted {
    /// `false`: there was no such token.
    pub deleted: bool,
}

/// One entry of `GET /v1/admin/audit` as the `audit` command and `nodes show` read it; `-o
/// json` prints the entries as sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditListing {
    /// 1, 2, 3, ...: the log's order.
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    pub actor: String,
    /// `enroll`, `sign`, `revoke`, ... (snake_case).
    pub action: String,
    pub subject: String,
    /// `ok`, `denied` or `error`.
    pub outcome: String,
    #[serde(default)]
    pub detail: String,
}

/// An etcd user of a revoked node that still exists, and why: `etcd_users_pending` of the
/// answer of `POST /v1/admin/nodes/<node>/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEtcdUser {
    pub user: String,
    pub reason: String,
}

/// What `nodes revoke` reads of the server's answer (the node's record, plus this).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NodeRevoked {
    /// Empty once the node's etcd users are gone.
    #[serde(default)]
    pub etcd_users_pending: Vec<PendingEtcdUser>,
}

/// The answer of `POST /v1/admin/rbac/apply`. `plan` is the applied plan: the server sends its
/// RBAC plan, the CLI reads only its conflicts ([`PlanConflicts`]). Fields in the order the
/// JSON has always had them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacApplied<P> {
    /// Changes made in etcd.
    pub applied: usize,
    /// The server's latest check of etcd's releases, one line each.
    pub etcd_warnings: Vec<String>,
    pub plan: P,
    /// The plan for people, as `calseg-server plan` prints it.
    pub text: String,
}

/// What the CLI reads of an applied RBAC plan: the conflicts it left alone (exit status 2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PlanConflicts {
    #[serde(default)]
    pub conflicts: Vec<serde::de::IgnoredAny>,
}

/// The answer of `DELETE /v1/admin/nodes/<node>` (pending or denied nodes only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDeleted {
    /// The node's name.
    pub deleted: String,
    /// The state it was in: `pending` or `denied`.
    pub state: String,
}
