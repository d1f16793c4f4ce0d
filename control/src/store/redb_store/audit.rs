//! The audit log on redb: append and read, nothing else.

use redb::{ReadableTable, WriteTransaction};

use super::RedbStore;
use super::tables::AUDIT;
use crate::store::codec::{decode, encode};
use crate::store::records::numbered;
use crate::store::{AuditEntry, NewAuditEntry, StoreError};

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
