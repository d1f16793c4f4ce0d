//! A node's manifest: everything its agent must install, render and restart. The server
//! computes it from the policy for the calling node only.

use serde::{Deserialize, Serialize};

/// What one node must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub node: String,
    /// Changes whenever anything below changes; also the HTTP ETag.
    pub revision: String,
    pub etcd: EtcdTarget,
    pub identities: Vec<Identity>,
    /// Certificate lifetime the server signs for, in seconds.
    pub lifetime_secs: u64,
    /// Renew after this fraction of the lifetime (plus per-node jitter).
    pub renew_after: f64,
    /// The server's policy revision (a fleet-wide counter) this manifest was computed from.
    /// Informational: not part of `revision`, so a policy change that does not touch this node
    /// leaves its ETag alone. Absent from older servers; older agents ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_revision: Option<u64>,
    /// During a rotation of the fleet CA: the fingerprint (`sha256:<hex>`) of the CA that signs
    /// fleet certificates now. An agent whose fleet certificate came from another CA renews it
    /// at once (the renewal also returns the CAs to trust). Part of `revision`, so parked
    /// long-polls wake. Absent otherwise, and from older servers; older agents ignore it and
    /// move to the new CA at their next due renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_ca: Option<String>,
}

/// How components reach etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdTarget {
    pub endpoints: Vec<String>,
    /// PEM bundle components use to verify etcd's server certificate.
    pub ca_bundle_pem: String,
}

/// One component identity on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub component: String,
    /// etcd user = the certificate's CN.
    pub etcd_user: String,
    pub files: IdentityFiles,
    pub render: Render,
    /// systemd units restarted (once each) when this identity's files change.
    pub restart: Vec<String>,
    /// A key this identity may read: the agent checks a new certificate against etcd with it
    /// before installing anything.
    pub probe_key: String,
    /// During a rotation of the etcd client CA: the fingerprint (`sha256:<hex>`) of the CA this
    /// identity's certificate must come from. An agent whose installed certificate came from
    /// another CA re-issues it (its wave of the rotation is open). Absent otherwise, and from
    /// older servers; older agents ignore it and pick the new CA up at their next renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Where an identity's files go, and with which owner and modes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityFiles {
    pub dir: String,
    pub ca: String,
    pub cert: String,
    pub key: String,
    pub owner: String,
    pub group: String,
    pub key_mode: u32,
    pub cert_mode: u32,
}

/// The Calico configuration files that point at the identity's files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Render {
    /// EnvironmentFile with DATASTORE_TYPE, ETCD_ENDPOINTS and ETCD_*_FILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    /// calicoctl's CalicoAPIConfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calicoctl_cfg: Option<String>,
    /// A CNI config list whose calico plugin's etcd_* fields are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_conflist: Option<String>,
}
