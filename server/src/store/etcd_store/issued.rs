//! Issued certificates on etcd: unique serials, with a copy per node for `issued_for_node`.

use super::EtcdStore;
use super::stm::atomically;
use crate::store::records::whole_seconds;
use crate::store::redb_store::normalize_serial;
use crate::store::{IssuedRecord, StoreError};

pub(super) fn record(store: &EtcdStore, mut cert: IssuedRecord) -> Result<(), StoreError> {
    cert.serial = normalize_serial(&cert.serial)?;
    for t in [
        &mut cert.not_before,
        &mut cert.not_after,
        &mut cert.issued_at,
    ] {
        *t = whole_seconds(*t);
    }
    let key = store.keys.cert(&cert.serial);
    atomically(store, "recording an issued certificate", |tx| {
        // Nodes are never deleted, so the node's existence needs no compare (and reports that
        // change its record do not make this transaction conflict).
        if !tx.exists_unguarded(&store.keys.node(&cert.node))? {
            return Err(StoreError::UnknownNode {
                node: cert.node.clone(),
            });
        }
        if let Some(old) = tx.get::<IssuedRecord>("issued", &key)? {
            return Err(StoreError::DuplicateSerial {
                serial: cert.serial.clone(),
                node: old.node,
            });
        }
        tx.put("issued", &key, &cert)?;
        let copy = store.keys.node_cert(&cert.node, &cert.serial);
        tx.put("issued_by_node", &copy, &cert)
    })
}

/// By serial.
pub(super) fn for_node(store: &EtcdStore, node: &str) -> Result<Vec<IssuedRecord>, StoreError> {
    store.all("issued_by_node", &store.keys.issued_by_node(node))
}
