//! Issued certificates on etcd: unique serials, with a copy per node for `issued_for_node`.

use super::EtcdStore;
use super::stm::{Tx, atomically};
use crate::store::records::normalized;
use crate::store::{IssuedRecord, NewAuditEntry, StoreError};

pub(super) fn record(store: &EtcdStore, cert: IssuedRecord) -> Result<(), StoreError> {
    let cert = normalized(cert)?;
    atomically(store, "recording an issued certificate", |tx| {
        put_new(store, tx, &cert)
    })
}

/// Records the certificate and its audit entry in one etcd transaction.
pub(super) fn record_audited(
    store: &EtcdStore,
    cert: IssuedRecord,
    entry: &NewAuditEntry,
) -> Result<u64, StoreError> {
    let cert = normalized(cert)?;
    atomically(
        store,
        "recording an issued certificate and its audit entry",
        |tx| {
            put_new(store, tx, &cert)?;
            super::audit::append_in(store, tx, entry)
        },
    )
}

/// Stores a certificate of a known node under a serial not stored before.
fn put_new(store: &EtcdStore, tx: &mut Tx<'_>, cert: &IssuedRecord) -> Result<(), StoreError> {
    // Only pending or denied nodes are ever deleted, and those hold no certificate, so the
    // node's existence needs no compare (and reports that change its record do not make this
    // transaction conflict).
    if !tx.exists_unguarded(&store.keys.node(&cert.node))? {
        return Err(StoreError::UnknownNode {
            node: cert.node.clone(),
        });
    }
    let key = store.keys.cert(&cert.serial);
    if let Some(old) = tx.get::<IssuedRecord>("issued", &key)? {
        return Err(StoreError::DuplicateSerial {
            serial: cert.serial.clone(),
            node: old.node,
        });
    }
    tx.put("issued", &key, cert)?;
    let copy = store.keys.node_cert(&cert.node, &cert.serial);
    tx.put("issued_by_node", &copy, cert)
}

/// By serial.
pub(super) fn for_node(store: &EtcdStore, node: &str) -> Result<Vec<IssuedRecord>, StoreError> {
    store.all("issued_by_node", &store.keys.issued_by_node(node))
}
