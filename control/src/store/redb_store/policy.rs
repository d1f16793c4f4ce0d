//! Policy revisions on redb: a counter keyed table, appended to only when the policy changes;
//! the policy texts, and the latest rollout in waves.

use redb::ReadableTable;

use super::RedbStore;
use super::tables::{POLICY_REVISIONS, POLICY_TEXTS, ROLLOUT, get, put};
use crate::store::codec::{decode, encode};
use crate::store::{PolicyRevision, RolloutRecord, StoreError};
use time::OffsetDateTime;

pub(super) fn record(
    store: &RedbStore,
    hash_hex: &str,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(POLICY_REVISIONS)?;
        let last = match table.last()? {
            Some((k, v)) => {
                let key = k.value().to_string();
                Some(decode::<PolicyRevision>(
                    "policy_revisions",
                    &key,
                    v.value(),
                )?)
            }
            None => None,
        };
        if let Some(last) = &last
            && last.hash == hash_hex
        {
            return Ok(last.revision);
        }
        let revision = last.map_or(1, |l| l.revision.saturating_add(1));
        let entry = PolicyRevision {
            revision,
            hash: hash_hex.to_owned(),
            first_seen: now.unix_timestamp(),
        };
        let key = revision.to_string();
        table.insert(
            revision,
            encode("policy_revisions", &key, &entry)?.as_slice(),
        )?;
        Ok(revision)
    })
}

pub(super) fn latest(store: &RedbStore, limit: usize) -> Result<Vec<PolicyRevision>, StoreError> {
    store.read(|tx| {
        let table = tx.open_table(POLICY_REVISIONS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            let (k, v) = row?;
            out.push(decode(
                "policy_revisions",
                &k.value().to_string(),
                v.value(),
            )?);
        }
        Ok(out)
    })
}

pub(super) fn save_text(store: &RedbStore, revision: u64, text: &str) -> Result<(), StoreError> {
    store.write(|tx| {
        tx.open_table(POLICY_TEXTS)?.insert(revision, text)?;
        Ok(())
    })
}

pub(super) fn text(store: &RedbStore, revision: u64) -> Result<Option<String>, StoreError> {
    store.read(|tx| {
        let table = tx.open_table(POLICY_TEXTS)?;
        Ok(table.get(revision)?.map(|v| v.value().to_owned()))
    })
}

pub(super) fn save_rollout(store: &RedbStore, rollout: &RolloutRecord) -> Result<(), StoreError> {
    store.write(|tx| put(&mut tx.open_table(ROLLOUT)?, "rollout", "current", rollout))
}

pub(super) fn rollout(store: &RedbStore) -> Result<Option<RolloutRecord>, StoreError> {
    store.read(|tx| get(&tx.open_table(ROLLOUT)?, "rollout", "current"))
}
