//! The records the store keeps about nodes, issued certificates and the audit log.
//!
//! Records are stored as JSON. Every field added after the first release must carry
//! `#[serde(default)]` so older files still decode, and unknown fields are ignored so a
//! downgraded server can still read a newer file's records. Timestamps are stored as whole Unix
//! seconds (`unix_ts` below); the store truncates the `now` it is given to whole seconds, so what
//! it returns is exactly what it stored.

use std::fmt;

use calseg_api::report::{LastReport, Report};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[cfg(doc)]
use super::Store;
use super::StoreError;

/// Where a node stands with the server. Changes are checked: see [`Store::set_node_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Asked to enroll without a token; waits for `calseg-server nodes approve`.
    Pending,
    /// May hold a fleet certificate and receive identities.
    Approved,
    /// An admin refused its enrollment. An admin may still approve it later.
    Denied,
    /// Its identities were withdrawn. Only a token scoped to this node brings it back.
    Revoked,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Revoked => "revoked",
        })
    }
}

/// The node's current fleet (server <-> agent mTLS) certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCert {
    /// Lowercase hex, as in [`IssuedRecord::serial`].
    pub serial: String,
    #[serde(with = "unix_ts")]
    pub not_after: OffsetDateTime,
    /// `sha256:` of the certificate's public key (`calseg_api::fingerprint`), as the agent
    /// prints it. None in records written before it was kept.
    #[serde(default)]
    pub key_fingerprint: Option<String>,
    /// The fingerprint of the fleet CA that signed it (`sha256:<hex>`). Absent from records
    /// written before fleet CA rotations: those came from the CA in force then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// What a node's every call is checked against, read from its stored record without the rest
/// (its last report, pending key and dates are skipped, not built): its state, enrollment
/// generation and current fleet certificate's serial.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct NodeStanding {
    pub state: NodeState,
    #[serde(default)]
    pub generation: u32,
    #[serde(default)]
    pub fleet_cert: Option<FleetSerial>,
}

/// The serial of a [`FleetCert`], alone.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FleetSerial {
    pub serial: String,
}

/// Everything the server knows about one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub state: NodeState,
    /// First contact: token redemption or the first pending request. Reset by re-enrollment.
    #[serde(with = "unix_ts")]
    pub enrolled_at: OffsetDateTime,
    /// Who let it in: `token:<id>`, `admin:<who>` or `auto:<glob>`. None while pending/denied.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// When and by whom `state` last changed, for the inventory and for forensics.
    #[serde(with = "unix_ts")]
    pub state_changed_at: OffsetDateTime,
    #[serde(default)]
    pub state_changed_by: String,
    #[serde(default)]
    pub fleet_cert: Option<FleetCert>,
    #[serde(default, with = "unix_ts::option")]
    pub last_seen: Option<OffsetDateTime>,
    /// The agent's last report (revision, identities, units, errors), stored as JSON and read
    /// back typed; one this version cannot read is kept as found ([`LastReport`]).
    #[serde(default)]
    pub last_report: Option<LastReport>,
    /// The CSR waiting for approval; dropped once a fleet certificate is recorded or the node is
    /// denied or revoked.
    #[serde(default)]
    pub pending_csr: Option<String>,
    /// Enrollment generation: 0 at first, one more at each revocation. Part of the node's etcd
    /// user names once above 0 (`calico-node.node2~g1`), so a certificate issued before a
    /// revocation names a user that never exists again (`policy::names`).
    #[serde(default)]
    pub generation: u32,
    /// The one key that asked to enroll without a token, and from where. Set by the first
    /// request; another key asking for the same name is refused, never swapped in. Kept while
    /// denied and approved, dropped once a fleet certificate is recorded. First and last seen
    /// are `enrolled_at` and `last_seen`.
    #[serde(default)]
    pub pending_key: Option<PendingKey>,
}

impl NodeRecord {
    /// A node first known at `at`, in `state`, with nothing else recorded yet.
    pub fn new(name: &str, state: NodeState, at: OffsetDateTime) -> Self {
        Self {
            name: name.to_owned(),
            state,
            enrolled_at: at,
            approved_by: None,
            state_changed_at: at,
            state_changed_by: String::new(),
            fleet_cert: None,
            last_seen: None,
            last_report: None,
            pending_csr: None,
            generation: 0,
            pending_key: None,
        }
    }
}

/// The key of a pending enrollment request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingKey {
    /// `sha256:<hex>` of the CSR's SubjectPublicKeyInfo ([`calseg_api::fingerprint`]).
    pub fingerprint: String,
    /// The address the request that set this key came from.
    pub source: String,
}

/// A request to enroll without a token, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAsk {
    pub csr_pem: String,
    /// Of the CSR's key, computed by the caller from the checked CSR.
    pub key: PendingKey,
    /// Pending nodes the store holds at most (`[api] max_pending`); a new one beyond is
    /// refused with [`StoreError::TooManyPending`].
    pub max_pending: usize,
}

/// One certificate the server signed. Serials are unique across the whole store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Hex; the store keeps it lowercase.
    pub serial: String,
    /// The certificate's Common Name (the etcd user for component certificates).
    pub cn: String,
    pub node: String,
    /// The component name, or `fleet` for the node's fleet certificate.
    pub component: String,
    #[serde(with = "unix_ts")]
    pub not_before: OffsetDateTime,
    #[serde(with = "unix_ts")]
    pub not_after: OffsetDateTime,
    #[serde(with = "unix_ts")]
    pub issued_at: OffsetDateTime,
    /// The fingerprint of the CA that signed it (`sha256:<hex>`). Absent from records written
    /// before CA rotations: those came from the CA in force before the first rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// What an audit entry records. Unknown actions (from a newer server) read back as `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    Enroll,
    Issue,
    Approve,
    Deny,
    Revoke,
    Report,
    RbacApply,
    TokenCreate,
    TokenDelete,
    /// A pending or denied node was deleted (by an admin, or expired unapproved).
    NodeDelete,
    /// A rollout in waves started, opened a wave, paused, finished, or an operator acted on it.
    Rollout,
    /// A restart lease was refused renewal past its longest life (`[rollout] max_lease_life`).
    Lease,
    /// A step of a rotation of the etcd client CA (`calseg-server ca rotate`).
    CaRotation,
    /// The store was read for a backup (`calseg-server backup` through the running server).
    Backup,
    #[serde(other)]
    Other,
}

/// How the audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Ok,
    Denied,
    Error,
}

/// An audit entry before the store numbers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: OffsetDateTime,
    /// A node name, `admin[:<who>]` or `system`.
    pub actor: String,
    pub action: AuditAction,
    /// What the action was about: a node, a token id, a serial, a revision.
    pub subject: String,
    pub outcome: AuditOutcome,
    /// Free text for people; never secrets.
    pub detail: String,
}

/// A stored audit entry: append-only, numbered by a strictly increasing `seq` starting at 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(with = "unix_ts")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: AuditAction,
    pub subject: String,
    pub outcome: AuditOutcome,
    #[serde(default)]
    pub detail: String,
}

/// The latest rollout in waves: from which policy revision to which, where it stands, and
/// which nodes are in which wave (fixed when it starts, so nodes enrolling later shift nobody).
/// The policy texts of both revisions are kept with [`Store::save_policy_text`], so a
/// restarted server resumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub from_revision: u64,
    pub to_revision: u64,
    pub state: calseg_api::rollout::RolloutState,
    /// Waves `0..opened_waves` get the new policy.
    pub opened_waves: usize,
    /// Unix seconds each opened wave opened at.
    #[serde(default)]
    pub wave_opened_at: Vec<i64>,
    /// Unix seconds since when the last opened wave has been healthy (for `bake`).
    #[serde(default)]
    pub wave_healthy_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Node names per wave, the canary first.
    pub waves: Vec<Vec<String>>,
}

impl RolloutRecord {
    /// A rollout in waves just started at `created_at` (Unix seconds), no wave open yet.
    pub fn running(
        from_revision: u64,
        to_revision: u64,
        waves: Vec<Vec<String>>,
        created_at: i64,
    ) -> Self {
        Self {
            from_revision,
            to_revision,
            state: calseg_api::rollout::RolloutState::Running,
            opened_waves: 0,
            wave_opened_at: Vec::new(),
            wave_healthy_at: None,
            created_at,
            waves,
        }
    }
}

/// The latest rotation of the etcd client CA: which CA replaces which, where it stands, what
/// each etcd endpoint said to the new CA, and the re-issuing waves. Kept after it finishes, so
/// `ca status` shows the last one; a new rotation replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRotationRecord {
    /// The CA rotated (`etcd-client`).
    pub ca: String,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub phase: calseg_api::ca::RotationPhase,
    /// Unix seconds.
    pub begun_at: i64,
    pub begun_by: String,
    /// The latest probe of every endpoint.
    #[serde(default)]
    pub probes: Vec<calseg_api::ca::EndpointTrust>,
    /// The re-issuing waves, once every endpoint trusts the new CA. Its revisions are the
    /// policy revision in force when the waves started (informational).
    #[serde(default)]
    pub waves: Option<RolloutRecord>,
    /// Unix seconds, when it finished or was rolled back.
    #[serde(default)]
    pub ended_at: Option<i64>,
}

/// Truncates to whole seconds: the precision the store keeps.
pub(crate) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Serde for [`OffsetDateTime`] as whole Unix seconds (UTC). The `time` crate's own serde
/// support is a feature this workspace does not enable.
pub(crate) mod unix_ts {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.unix_timestamp())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        OffsetDateTime::from_unix_timestamp(i64::deserialize(d)?).map_err(D::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.unix_timestamp()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D>(d: D) -> Result<Option<OffsetDateTime>, D::Error>
        where
            D: Deserializer<'de>,
        {
            Option::<i64>::deserialize(d)?
                .map(OffsetDateTime::from_unix_timestamp)
                .transpose()
                .map_err(D::Error::custom)
        }
    }
}

/// The entry that follows the entry numbered `last` (0: none yet).
pub(in crate::store) fn numbered(
    last: u64,
    entry: &NewAuditEntry,
) -> Result<AuditEntry, StoreError> {
    // Unreachable at any realistic rate, but never wrap onto (overwrite) old entries.
    let seq = last.checked_add(1).ok_or_else(|| StoreError::Corrupt {
        table: "audit",
        key: last.to_string(),
        source: serde::de::Error::custom("the audit sequence is exhausted"),
    })?;
    Ok(AuditEntry {
        seq,
        at: whole_seconds(entry.at),
        actor: entry.actor.clone(),
        action: entry.action,
        subject: entry.subject.clone(),
        outcome: entry.outcome,
        detail: entry.detail.clone(),
    })
}

/// Serials are compared as lowercase hex; anything else is refused.
pub(in crate::store) fn normalize_serial(serial: &str) -> Result<String, StoreError> {
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidSerial {
            serial: serial.to_owned(),
        });
    }
    Ok(serial.to_ascii_lowercase())
}

/// The record as stored: lowercase hex serial, whole-second times.
pub(in crate::store) fn normalized(mut cert: IssuedRecord) -> Result<IssuedRecord, StoreError> {
    cert.serial = normalize_serial(&cert.serial)?;
    for t in [
        &mut cert.not_before,
        &mut cert.not_after,
        &mut cert.issued_at,
    ] {
        *t = crate::store::records::whole_seconds(*t);
    }
    Ok(cert)
}

/// A node's record once its new fleet certificate is recorded: only an approved node gets one.
pub(in crate::store) fn with_fleet_cert(
    mut r: NodeRecord,
    cert: FleetCert,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    if r.state != NodeState::Approved {
        let hint = "only an approved node gets a fleet certificate; approve it first";
        return Err(StoreError::NodeRefused {
            node: r.name,
            state: r.state,
            hint,
        });
    }
    r.fleet_cert = Some(cert);
    r.pending_csr = None;
    r.pending_key = None;
    r.last_seen = Some(now);
    Ok(r)
}

/// A node's record after a report (`report: None` for a mere contact): `last_seen` never goes
/// backwards, since requests may finish out of order.
pub(in crate::store) fn seen(
    mut r: NodeRecord,
    report: Option<&Report>,
    now: OffsetDateTime,
) -> NodeRecord {
    if let Some(report) = report {
        r.last_report = Some(LastReport::Read(report.clone()));
    }
    r.last_seen = r.last_seen.max(Some(now));
    r
}
