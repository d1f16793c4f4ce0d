//! The audit log on redb: append and read, nothing else.

use redb::{ReadableTable, WriteTransaction};

use super::RedbStore;
use super::tables::{AUDIT, decode, encode};
use crate::store::records::whole_seconds;
use crate::store::{AuditEntry, NewAuditEntry, StoreError};

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

pub(super) fn append(store: &RedbStore, entry: NewAuditEntry) -> Result<u64, StoreError> {
    store.write(|tx| append_in(tx, &entry))
}

/// Appends `entry` within the write transaction `tx`; its seq.
pub(super) fn append_in(tx: &WriteTransaction, entry: &NewAuditEntry) -> Result<u64, StoreError> {
    let mut table = tx.open_table(AUDIT)?;
    let last = table.last()?.map_or(0, |(k, _)| k.value());
    let entry = numbered(last, entry)?;
    let seq = entry.seq;
    let key = seq.to_string();
    table.insert(seq, encode("audit", &key, &entry)?.as_slice())?;
    Ok(seq)
}

pub(super) fn since(
    store: &RedbStore,
    since_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let Some(first) = since_seq.checked_add(1) else {
        return Ok(Vec::new());
    };
    store.read(|tx| {
        let table = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in table.range(first..)?.take(limit) {
            let (k, v) = row?;
            out.push(decode("audit", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    })
}
