//! Policy revisions on etcd (numbered through a head key every new revision compares and
//! bumps), the policy texts, and the latest rollout in waves.

use time::OffsetDateTime;

use super::EtcdStore;
use super::stm::atomically;
use crate::store::snapshot::PolicyText;
use crate::store::{PolicyRevision, RolloutRecord, StoreError};

pub(super) fn record(
    store: &EtcdStore,
    hash_hex: &str,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let head_key = store.keys.policy_head();
    atomically(store, "recording the policy revision", |tx| {
        let head: Option<PolicyRevision> = tx.get("policy_revisions", &head_key)?;
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
        tx.put(
            "policy_revisions",
            &store.keys.policy_revision(revision),
            &entry,
        )?;
        tx.put("policy_revisions", &head_key, &entry)?;
        Ok(revision)
    })
}

/// Newest first.
pub(super) fn latest(store: &EtcdStore, limit: usize) -> Result<Vec<PolicyRevision>, StoreError> {
    let prefix = store.keys.policy_revisions();
    let kvs = store
        .etcd
        .last("reading policy revisions", &prefix, limit)?;
    super::decode_all("policy_revisions", kvs)
}

pub(super) fn save_text(store: &EtcdStore, revision: u64, text: &str) -> Result<(), StoreError> {
    let key = store.keys.policy_text(revision);
    let value = PolicyText {
        revision,
        text: text.to_owned(),
    };
    let bytes = super::encode("policy_texts", &key, &value)?;
    store.etcd.put("saving a policy text", &key, bytes)
}

pub(super) fn text(store: &EtcdStore, revision: u64) -> Result<Option<String>, StoreError> {
    let key = store.keys.policy_text(revision);
    let kv = store.etcd.get("reading a policy text", &key)?;
    kv.map(|kv| super::decode::<PolicyText>("policy_texts", &key, kv.value()).map(|t| t.text))
        .transpose()
}

pub(super) fn save_rollout(store: &EtcdStore, rollout: &RolloutRecord) -> Result<(), StoreError> {
    let key = store.keys.rollout();
    let bytes = super::encode("rollout", &key, rollout)?;
    store.etcd.put("saving the rollout", &key, bytes)
}

pub(super) fn rollout(store: &EtcdStore) -> Result<Option<RolloutRecord>, StoreError> {
    let key = store.keys.rollout();
    let kv = store.etcd.get("reading the rollout", &key)?;
    kv.map(|kv| super::decode("rollout", &key, kv.value()))
        .transpose()
}
