//! Signing one identity: the agent sends a CSR for a component, the server checks that its CN is
//! exactly the etcd user the policy gives this node for that component, and signs it.

use serde::{Deserialize, Serialize};

/// One CSR for one of the calling node's identities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    pub component: String,
    /// PEM CSR; its CN must equal the identity's `etcd_user` in the manifest.
    pub csr_pem: String,
}

/// The signed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    pub cert_pem: String,
    /// Hex serial, as etcd and openssl show it.
    pub serial: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// The fingerprint (`sha256:<hex>` of the DER certificate) of the CA that signed it: what
    /// the agent records, to compare with the manifest's [`Identity::issuer`] during a CA
    /// rotation. Absent from older servers.
    ///
    /// [`Identity::issuer`]: crate::manifest::Identity::issuer
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}
