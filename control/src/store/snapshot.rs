//! [`StoreSnapshot`]: every record a store holds, for `migrate-store` between backends.
//!
//! A snapshot is plain data with a stable JSON form, sorted by key within each kind, so two
//! snapshots compare record by record with `==`. It carries each token's SHA-256 hash and its
//! uses (the secret itself is never stored anywhere), so redemptions go on exactly where they
//! stopped. [`Store::export_snapshot`] reads one consistent view; [`Store::import_snapshot`]
//! refuses a target that holds anything and checks the snapshot with [`StoreSnapshot::check`]
//! before writing.
//!
//! [`Store::export_snapshot`]: super::Store::export_snapshot
//! [`Store::import_snapshot`]: super::Store::import_snapshot

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::records::unix_ts;
use super::tokens::TokenRecord;
use super::{
    AuditEntry, CaRotationRecord, IssuedRecord, LeaseRecord, NodeRecord, PolicyRevision,
    RolloutRecord, StoreError, TokenScope,
};

/// The snapshot format this code writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Every record of a store. Each list is sorted by its key (see [`StoreSnapshot::sort`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSnapshot {
    /// [`SNAPSHOT_FORMAT`] when written.
    pub format: u32,
    /// By id.
    pub tokens: Vec<SnapshotToken>,
    /// By name.
    pub nodes: Vec<NodeRecord>,
    /// By serial.
    pub issued: Vec<IssuedRecord>,
    /// By seq.
    pub audit: Vec<AuditEntry>,
    /// By id, expired ones included.
    pub leases: Vec<LeaseRecord>,
    /// By revision, oldest first.
    pub policy_revisions: Vec<PolicyRevision>,
    /// By revision.
    pub policy_texts: Vec<PolicyText>,
    pub rollout: Option<RolloutRecord>,
    /// Absent from snapshots written before CA rotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_rotation: Option<CaRotationRecord>,
}

/// A token as stored: with the hash of the whole token, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotToken {
    pub id: String,
    /// Hex SHA-256 of the whole token string.
    pub hash: String,
    pub scope: TokenScope,
    pub uses: Vec<String>,
    #[serde(with = "unix_ts")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "unix_ts")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// The text kept for one policy revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyText {
    pub revision: u64,
    pub text: String,
}

impl From<TokenRecord> for SnapshotToken {
    fn from(t: TokenRecord) -> Self {
        Self {
            id: t.id,
            hash: t.hash,
            scope: t.scope,
            uses: t.uses,
            expires_at: t.expires_at,
            created_at: t.created_at,
            created_by: t.created_by,
        }
    }
}

impl From<&SnapshotToken> for TokenRecord {
    fn from(t: &SnapshotToken) -> Self {
        Self {
            id: t.id.clone(),
            hash: t.hash.clone(),
            scope: t.scope.clone(),
            uses: t.uses.clone(),
            expires_at: t.expires_at,
            created_at: t.created_at,
            created_by: t.created_by.clone(),
        }
    }
}

impl StoreSnapshot {
    /// Puts every list in key order, so that snapshots of equal stores are equal.
    pub fn sort(&mut self) {
        self.tokens.sort_by(|a, b| a.id.cmp(&b.id));
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.issued.sort_by(|a, b| a.serial.cmp(&b.serial));
        self.audit.sort_by_key(|e| e.seq);
        self.leases.sort_by(|a, b| a.id.cmp(&b.id));
        self.policy_revisions.sort_by_key(|r| r.revision);
        self.policy_texts.sort_by_key(|t| t.revision);
    }

    /// Whether the snapshot holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
            && self.nodes.is_empty()
            && self.issued.is_empty()
            && self.audit.is_empty()
            && self.leases.is_empty()
            && self.policy_revisions.is_empty()
            && self.policy_texts.is_empty()
            && self.rollout.is_none()
            && self.ca_rotation.is_none()
    }

    /// Refuses a snapshot that a store could not hold as it is: another format, a key twice,
    /// a serial that is not lowercase hex, a certificate of an unknown node, or audit and
    /// revision numbers that do not start at 1 and grow by one.
    pub fn check(&self) -> Result<(), StoreError> {
        let bad = |reason: String| Err(StoreError::InvalidSnapshot { reason });
        if self.format != SNAPSHOT_FORMAT {
            return bad(format!(
                "format {} is not the supported format {SNAPSHOT_FORMAT}",
                self.format
            ));
        }
        unique("token id", self.tokens.iter().map(|t| t.id.as_str()))?;
        let nodes = unique("node", self.nodes.iter().map(|n| n.name.as_str()))?;
        unique("serial", self.issued.iter().map(|c| c.serial.as_str()))?;
        unique("lease id", self.leases.iter().map(|l| l.id.as_str()))?;
        if let Some(c) = self.issued.iter().find(|c| {
            c.serial.is_empty()
                || !c
                    .serial
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }) {
            return bad(format!("serial {:?} is not lowercase hex", c.serial));
        }
        if let Some(c) = self
            .issued
            .iter()
            .find(|c| !nodes.contains(c.node.as_str()))
        {
            return bad(format!(
                "certificate {} belongs to node {:?}, which the snapshot lacks",
                c.serial, c.node
            ));
        }
        dense("audit seq", self.audit.iter().map(|e| e.seq))?;
        dense(
            "policy revision",
            self.policy_revisions.iter().map(|r| r.revision),
        )?;
        let texts = self.policy_texts.iter().map(|t| t.revision.to_string());
        unique(
            "policy text revision",
            texts.collect::<Vec<_>>().iter().map(String::as_str),
        )?;
        Ok(())
    }
}

/// The keys as a set, or `InvalidSnapshot` naming the first one seen twice.
fn unique<'a>(
    what: &str,
    keys: impl Iterator<Item = &'a str>,
) -> Result<BTreeSet<&'a str>, StoreError> {
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err(StoreError::InvalidSnapshot {
                reason: format!("{what} {key:?} appears twice"),
            });
        }
    }
    Ok(seen)
}

/// Numbers must be 1, 2, 3, ... in order: the stores hand out the next one after the last.
fn dense(what: &str, numbers: impl Iterator<Item = u64>) -> Result<(), StoreError> {
    for (expected, n) in (1..).zip(numbers) {
        if n != expected {
            return Err(StoreError::InvalidSnapshot {
                reason: format!("{what} {n} found where {expected} was expected"),
            });
        }
    }
    Ok(())
}
