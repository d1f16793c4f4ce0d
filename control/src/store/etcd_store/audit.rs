//! The audit log on etcd: a counter key every append compares and bumps, so seqs are dense
//! and unique across replicas.

use super::EtcdStore;
use super::keys::range_end;
use super::stm::{Tx, atomically};
use crate::store::records::numbered;
use crate::store::{AuditEntry, NewAuditEntry, StoreError};

pub(super) fn append(store: &EtcdStore, entry: NewAuditEntry) -> Result<u64, StoreError> {
    atomically(store, "appending to the audit log", |tx| {
        append_in(store, tx, &entry)
    })
}

/// Appends `entry` within `tx`: reads and bumps the counter; the entry's seq.
pub(super) fn append_in(
    store: &EtcdStore,
    tx: &mut Tx<'_>,
    entry: &NewAuditEntry,
) -> Result<u64, StoreError> {
    let counter = store.keys.audit_seq();
    let last: u64 = tx.get("audit_seq", &counter)?.unwrap_or(0);
    let stored = numbered(last, entry)?;
    let seq = stored.seq;
    tx.put("audit", &store.keys.audit_entry(seq), &stored)?;
    tx.put("audit_seq", &counter, &seq)?;
    Ok(seq)
}

pub(super) fn since(
    store: &EtcdStore,
    since_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let Some(first) = since_seq.checked_add(1) else {
        return Ok(Vec::new());
    };
    let end = range_end(&store.keys.audit());
    let kvs = store.etcd.range(
        "reading the audit log",
        &store.keys.audit_entry(first),
        &end,
        limit,
    )?;
    super::decode_all("audit", kvs)
}
