//! Issued certificates on redb: unique serials, indexed by node.

use redb::{ReadableTable, WriteTransaction};

use super::RedbStore;
use super::tables::{self, ISSUED, ISSUED_BY_NODE, NODES};
use crate::store::records::normalized;
use crate::store::{IssuedRecord, NewAuditEntry, StoreError};

pub(super) fn record(store: &RedbStore, cert: IssuedRecord) -> Result<(), StoreError> {
    let cert = normalized(cert)?;
    store.write(|tx| insert_new(tx, &cert))
}

/// Records the certificate and its audit entry in one write transaction (one disk sync).
pub(super) fn record_audited(
    store: &RedbStore,
    cert: IssuedRecord,
    entry: &NewAuditEntry,
) -> Result<u64, StoreError> {
    let cert = normalized(cert)?;
    store.write(|tx| {
        insert_new(tx, &cert)?;
        super::audit::append_in(tx, entry)
    })
}

/// Stores a certificate of a known node under a serial not stored before.
fn insert_new(tx: &WriteTransaction, cert: &IssuedRecord) -> Result<(), StoreError> {
    if tx.open_table(NODES)?.get(cert.node.as_str())?.is_none() {
        return Err(StoreError::UnknownNode {
            node: cert.node.clone(),
        });
    }
    let mut issued = tx.open_table(ISSUED)?;
    if let Some(old) = tables::get::<IssuedRecord, _>(&issued, "issued", &cert.serial)? {
        return Err(StoreError::DuplicateSerial {
            serial: cert.serial.clone(),
            node: old.node,
        });
    }
    tables::put(&mut issued, "issued", &cert.serial, cert)?;
    tx.open_multimap_table(ISSUED_BY_NODE)?
        .insert(cert.node.as_str(), cert.serial.as_str())?;
    Ok(())
}

pub(super) fn for_node(store: &RedbStore, node: &str) -> Result<Vec<IssuedRecord>, StoreError> {
    store.read(|tx| {
        let issued = tx.open_table(ISSUED)?;
        let mut out = Vec::new();
        for serial in tx.open_multimap_table(ISSUED_BY_NODE)?.get(node)? {
            let serial = serial?;
            let serial = serial.value();
            // The index and the table are written in one transaction, so a miss is corruption.
            let cert =
                tables::get(&issued, "issued", serial)?.ok_or_else(|| StoreError::Corrupt {
                    table: "issued_by_node",
                    key: format!("{node}/{serial}"),
                    source: serde::de::Error::custom("the index names a serial that is not stored"),
                })?;
            out.push(cert);
        }
        Ok(out)
    })
}
