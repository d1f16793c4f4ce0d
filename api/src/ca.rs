//! The server's two CAs as the admin API shows them (`GET /v1/admin/ca`), and a rotation of the
//! etcd client CA in progress: its phase, what each etcd member said to a probe from the new
//! CA, the re-issuing waves, and the identities that still depend on the old CA.

use serde::{Deserialize, Serialize};

use crate::rollout::WaveRollout;

/// `GET /v1/admin/ca`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaStatus {
    /// The CA that signs component identities now.
    pub etcd_client: CaSummary,
    /// The CA that signs fleet certificates and the server's TLS certificate.
    pub fleet: CaSummary,
    /// The latest rotation of the etcd client CA (also after it finished), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
    /// A rotation of the fleet CA in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_rotation: Option<FleetRotationStatus>,
}

/// Where a rotation of the fleet CA stands. It has no waves: a fleet certificate's renewal
/// restarts nothing, so every agent moves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetRotationPhase {
    /// Both CAs are trusted; fleet certificates come from the new one. `--finish` makes it the
    /// only one once every approved node's certificate comes from it.
    Overlap,
    /// Rolled back: both are still trusted, fleet certificates come from the old one again, and
    /// a second `--rollback` drops the new CA once no node's certificate comes from it.
    RollingBack,
}

impl FleetRotationPhase {
    /// The wire and display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::RollingBack => "rolling_back",
        }
    }
}

/// A rotation of the fleet CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRotationStatus {
    pub phase: FleetRotationPhase,
    /// The CA fleet certificates come from now, and the pin of enrollments after `--finish`.
    pub signing: CaSummary,
    /// The other trusted CA (the old one during the overlap, the dropped one when rolling back).
    pub other: CaSummary,
    /// Approved nodes whose current fleet certificate does not come from `signing`; the next
    /// step waits for none.
    #[serde(default)]
    pub pending_nodes: Vec<String>,
}

/// One CA: what agents and etcd pin or trust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaSummary {
    /// `sha256:<hex>` over the DER certificate.
    pub fingerprint: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationPhase {
    /// The new CA exists; calseg waits until every etcd member trusts it and issues nothing
    /// from it meanwhile.
    Trusting,
    /// Every member trusts it: identities are re-issued from it in waves.
    Reissuing,
    /// Every wave is open: `--finish` retires the old CA once no live identity depends on it.
    Reissued,
    /// The old CA is retired; the new one is the etcd client CA.
    Finished,
    /// Rolled back: the new CA was dropped before it was ever the only one.
    RolledBack,
}

impl RotationPhase {
    /// The wire and display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trusting => "trusting",
            Self::Reissuing => "reissuing",
            Self::Reissued => "reissued",
            Self::Finished => "finished",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Whether the rotation is over (another may begin).
    pub fn is_over(self) -> bool {
        matches!(self, Self::Finished | Self::RolledBack)
    }
}

impl std::fmt::Display for RotationPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one etcd endpoint said to a connection from a throwaway identity of the new CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointTrust {
    pub endpoint: String,
    /// The TLS handshake with a client certificate of the new CA succeeded.
    pub trusted: bool,
    /// What etcd answered, or why the connection failed.
    pub detail: String,
    /// Unix seconds.
    pub checked_at: i64,
}

/// A rotation of the etcd client CA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotationStatus {
    pub phase: RotationPhase,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    /// Unix seconds.
    pub begun_at: i64,
    pub begun_by: String,
    /// The bundle of both CAs for etcd's `--trusted-ca-file`, on the server host.
    pub bundle_file: String,
    /// The latest probe of every etcd endpoint (phase `trusting` and after).
    #[serde(default)]
    pub probes: Vec<EndpointTrust>,
    /// The re-issuing waves (phase `reissuing` and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<WaveRollout>,
    /// Live identities (node and component, or `~all` for a component-wide one) whose
    /// certificate still comes from the old CA; `--finish` waits for none.
    #[serde(default)]
    pub old_ca_identities: Vec<String>,
    /// Whether the replica that answered holds the new CA's files (every replica must).
    pub new_ca_here: bool,
}

/// An operator's step of a rotation: `POST /v1/admin/ca/{ca}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationAction {
    Begin,
    Finish,
    Pause,
    Resume,
    Rollback,
}

impl RotationAction {
    /// Every action, in the order a refusal lists them.
    pub const ALL: [Self; 5] = [
        Self::Begin,
        Self::Finish,
        Self::Pause,
        Self::Resume,
        Self::Rollback,
    ];

    /// Parses the `{action}` of the route.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == text)
    }

    /// The `{action}` of the route.
    pub fn name(self) -> &'static str {
        match self {
            Self::Begin => "begin",
            Self::Finish => "finish",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Rollback => "rollback",
        }
    }
}

/// The CA rotated in waves (the `{ca}` of the route).
pub const ETCD_CLIENT: &str = "etcd-client";

/// The fleet CA (the `{ca}` of the route): begin, finish and rollback only.
pub const FLEET: &str = "fleet";

/// The answer to a rotation step: what the operator does next, and the status after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotationStepped {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub status: CaStatus,
}
