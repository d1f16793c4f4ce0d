//! Enrollment: a node proves itself once (a bootstrap token, or an operator's approval) and
//! receives a fleet certificate for mutual TLS from then on. Its private key stays on the node.

use serde::{Deserialize, Serialize};

/// The longest node name: a node's name is the Common Name of its fleet certificate, and
/// RFC 5280 bounds a Common Name at 64 characters (ub-common-name).
pub const MAX_NODE_NAME_LEN: usize = 64;

/// Sent by an agent that has no fleet certificate yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The node's name; becomes the fleet certificate's CN.
    pub node: String,
    /// A bootstrap token `<id>.<secret>`; without one the node waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PEM CSR whose CN is `node`, made from a key generated on the node.
    pub csr_pem: String,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnrollResponse {
    /// Enrolled: the fleet certificate and the fleet CA to trust from now on.
    Enrolled {
        cert_pem: String,
        fleet_ca_pem: String,
    },
    /// Waiting for `calseg-server nodes approve <node> --fingerprint <its key's>`; ask again later
    /// with the same key (another key for the same name is refused while this one waits).
    Pending { retry_after_secs: u64 },
}

/// The fleet CA certificate, for pinning at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCa {
    pub fleet_ca_pem: String,
}

/// Sent to renew the calling agent's fleet certificate (mutual TLS with the current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRenewRequest {
    pub csr_pem: String,
}
