//! Issued certificates (unique serials, listed per node) and the audit log (dense seqs from a
//! counter every append reads and bumps).

use crate::store::kv::{self, Key, Kv, Space, Txn};
use crate::store::records::{normalized, numbered};
use crate::store::{AuditEntry, IssuedRecord, NewAuditEntry, StoreError};

pub(super) fn record(store: &impl Kv, cert: IssuedRecord) -> Result<(), StoreError> {
    let cert = normalized(cert)?;
    store.write("recording an issued certificate", |tx| put_new(tx, &cert))
}

/// Records the certificate and its audit entry in one transaction.
pub(super) fn record_audited(
    store: &impl Kv,
    cert: IssuedRecord,
    entry: &NewAuditEntry,
) -> Result<u64, StoreError> {
    let cert = normalized(cert)?;
    store.write(
        "recording an issued certificate and its audit entry",
        |tx| {
            put_new(tx, &cert)?;
            append_in(tx, entry)
        },
    )
}

/// Records several certificates, each with its audit entry, in one transaction (the signing's
/// group commit). An item refused on its own (malformed serial, unknown node, a serial stored
/// before or twice in the batch) is refused alone and writes nothing; any other failure fails
/// the whole batch, so no certificate is ever recorded without its audit entry. The audit
/// counter is read once and written once: the transaction need not read its own writes.
pub(super) fn record_audited_batch(
    store: &impl Kv,
    items: &[(IssuedRecord, NewAuditEntry)],
) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
    store.write(
        "recording issued certificates and their audit entries",
        |tx| {
            let mut last: u64 = kv::get(tx, Space::AuditSeq, Key::One)?.unwrap_or(0);
            let mut serials = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(items.len());
            for (cert, entry) in items {
                let cert = match normalized(cert.clone()) {
                    Ok(cert) => cert,
                    Err(refused) => {
                        out.push(Err(refused));
                        continue;
                    }
                };
                if !serials.insert(cert.serial.clone()) {
                    out.push(Err(StoreError::DuplicateSerial {
                        serial: cert.serial,
                        node: cert.node,
                    }));
                    continue;
                }
                match put_new(tx, &cert) {
                    Ok(()) => {}
                    Err(
                        refused @ (StoreError::UnknownNode { .. }
                        | StoreError::DuplicateSerial { .. }),
                    ) => {
                        out.push(Err(refused));
                        continue;
                    }
                    Err(failed) => return Err(failed),
                }
                let stored = numbered(last, entry)?;
                last = stored.seq;
                kv::put(tx, Space::Audit, Key::Num(last), &stored)?;
                out.push(Ok(last));
            }
            if out.iter().any(Result::is_ok) {
                kv::put(tx, Space::AuditSeq, Key::One, &last)?;
            }
            Ok(out)
        },
    )
}

/// Stores a certificate of a known node under a serial not stored before.
fn put_new(tx: &mut dyn Txn, cert: &IssuedRecord) -> Result<(), StoreError> {
    // Only pending or denied nodes are ever deleted, and those hold no certificate, so the
    // node's existence needs no compare (and reports that change its record do not make this
    // transaction conflict).
    if !tx.exists_unguarded(Space::Nodes, &Key::name(&cert.node))? {
        return Err(StoreError::UnknownNode {
            node: cert.node.clone(),
        });
    }
    if let Some(old) = kv::get::<IssuedRecord>(tx, Space::Issued, Key::name(&cert.serial))? {
        return Err(StoreError::DuplicateSerial {
            serial: cert.serial.clone(),
            node: old.node,
        });
    }
    kv::put(tx, Space::Issued, Key::name(&cert.serial), cert)?;
    let copy = Key::Pair(cert.node.clone(), cert.serial.clone());
    kv::put(tx, Space::IssuedByNode, copy, cert)
}

/// By serial.
pub(super) fn for_node(store: &impl Kv, node: &str) -> Result<Vec<IssuedRecord>, StoreError> {
    store.read("reading a node's certificates", |tx| {
        kv::scan(tx, Space::IssuedByNode, Some(node))
    })
}

pub(super) fn append(store: &impl Kv, entry: NewAuditEntry) -> Result<u64, StoreError> {
    store.write("appending to the audit log", |tx| append_in(tx, &entry))
}

/// Appends `entry` within `tx`: reads and bumps the counter; the entry's seq.
fn append_in(tx: &mut dyn Txn, entry: &NewAuditEntry) -> Result<u64, StoreError> {
    let last: u64 = kv::get(tx, Space::AuditSeq, Key::One)?.unwrap_or(0);
    let stored = numbered(last, entry)?;
    let seq = stored.seq;
    kv::put(tx, Space::Audit, Key::Num(seq), &stored)?;
    kv::put(tx, Space::AuditSeq, Key::One, &seq)?;
    Ok(seq)
}

pub(super) fn audit_since(
    store: &impl Kv,
    since_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let Some(first) = since_seq.checked_add(1) else {
        return Ok(Vec::new());
    };
    store.read("reading the audit log", |tx| {
        kv::decode_all(Space::Audit, tx.range(Space::Audit, first, limit)?)
    })
}
