//! Policy revisions (numbered through a head every new revision reads and bumps), the policy
//! texts, the latest rollout in waves, and the latest rotation of the etcd client CA.

use time::OffsetDateTime;

use crate::store::kv::{self, Key, Kv, Space};
use crate::store::snapshot::PolicyText;
use crate::store::{CaRotationRecord, PolicyRevision, RolloutRecord, StoreError};

pub(super) fn record(
    store: &impl Kv,
    hash_hex: &str,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    store.write("recording the policy revision", |tx| {
        let head: Option<PolicyRevision> = kv::get(tx, Space::PolicyHead, Key::One)?;
        if let Some(head) = &head
            && head.hash == hash_hex
        {
            return Ok(head.revision);
        }
        let revision = head.map_or(1, |h| h.revision.saturating_add(1));
        let entry = PolicyRevision {
            revision,
            hash: hash_hex.to_owned(),
            first_seen: now.unix_timestamp(),
        };
        kv::put(tx, Space::PolicyRevisions, Key::Num(revision), &entry)?;
        kv::put(tx, Space::PolicyHead, Key::One, &entry)?;
        Ok(revision)
    })
}

/// Newest first.
pub(super) fn latest(store: &impl Kv, limit: usize) -> Result<Vec<PolicyRevision>, StoreError> {
    store.read("reading policy revisions", |tx| {
        let newest = tx.newest(Space::PolicyRevisions, limit)?;
        kv::decode_all(Space::PolicyRevisions, newest)
    })
}

pub(super) fn save_text(store: &impl Kv, revision: u64, text: &str) -> Result<(), StoreError> {
    let value = PolicyText {
        revision,
        text: text.to_owned(),
    };
    store.write("saving a policy text", |tx| {
        kv::put(tx, Space::PolicyTexts, Key::Num(revision), &value)
    })
}

pub(super) fn text(store: &impl Kv, revision: u64) -> Result<Option<String>, StoreError> {
    let text: Option<PolicyText> = store.read("reading a policy text", |tx| {
        kv::get(tx, Space::PolicyTexts, Key::Num(revision))
    })?;
    Ok(text.map(|t| t.text))
}

pub(super) fn save_rollout(store: &impl Kv, rollout: &RolloutRecord) -> Result<(), StoreError> {
    store.write("saving the rollout", |tx| {
        kv::put(tx, Space::Rollout, Key::One, rollout)
    })
}

pub(super) fn rollout(store: &impl Kv) -> Result<Option<RolloutRecord>, StoreError> {
    store.read("reading the rollout", |tx| {
        kv::get(tx, Space::Rollout, Key::One)
    })
}

pub(super) fn save_ca_rotation(
    store: &impl Kv,
    rotation: &CaRotationRecord,
) -> Result<(), StoreError> {
    store.write("saving the CA rotation", |tx| {
        kv::put(tx, Space::CaRotation, Key::One, rotation)
    })
}

pub(super) fn ca_rotation(store: &impl Kv) -> Result<Option<CaRotationRecord>, StoreError> {
    store.read("reading the CA rotation", |tx| {
        kv::get(tx, Space::CaRotation, Key::One)
    })
}
