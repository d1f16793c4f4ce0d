//! Node operations on etcd: the approval flow, state changes, fleet certificates, reports.

use time::OffsetDateTime;

use super::EtcdStore;
use super::stm::atomically;
use crate::store::records::{normalize_serial, seen, with_fleet_cert};
use crate::store::{NodeRecord, NodeState, StoreError, transitions};

/// Applies `f` to a known node's record in one transaction and stores the result.
fn update(
    store: &EtcdStore,
    what: &str,
    node: &str,
    f: impl Fn(NodeRecord) -> Result<NodeRecord, StoreError>,
) -> Result<NodeRecord, StoreError> {
    let key = store.keys.node(node);
    atomically(store, what, |tx| {
        let record: NodeRecord = tx
            .get("nodes", &key)?
            .ok_or_else(|| StoreError::UnknownNode {
                node: node.to_owned(),
            })?;
        let record = f(record)?;
        tx.put("nodes", &key, &record)?;
        Ok(record)
    })
}

pub(super) fn upsert_pending(
    store: &EtcdStore,
    node: &str,
    csr_pem: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    let key = store.keys.node(node);
    atomically(store, "recording a pending node", |tx| {
        let existing = tx.get("nodes", &key)?;
        let record = transitions::ask(existing, node, csr_pem, now)?;
        tx.put("nodes", &key, &record)?;
        Ok(record)
    })
}

pub(super) fn set_state(
    store: &EtcdStore,
    node: &str,
    state: NodeState,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    update(store, "changing a node's state", node, |r| {
        transitions::set_state(r, state, by, now)
    })
}

pub(super) fn get(store: &EtcdStore, node: &str) -> Result<Option<NodeRecord>, StoreError> {
    let key = store.keys.node(node);
    match store.etcd.get("reading a node", &key)? {
        Some(kv) => super::decode("nodes", &key, kv.value()).map(Some),
        None => Ok(None),
    }
}

/// By name (the escaped keys sort differently for names with unusual bytes).
pub(super) fn all(store: &EtcdStore) -> Result<Vec<NodeRecord>, StoreError> {
    let mut nodes: Vec<NodeRecord> = store.all("nodes", &store.keys.nodes())?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

pub(super) fn record_fleet_cert(
    store: &EtcdStore,
    node: &str,
    serial: &str,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let serial = normalize_serial(serial)?;
    update(store, "recording a fleet certificate", node, |r| {
        with_fleet_cert(r, serial.clone(), not_after, now)
    })?;
    Ok(())
}

pub(super) fn record_report(
    store: &EtcdStore,
    node: &str,
    report: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    update(store, "recording a report", node, |r| {
        Ok(seen(r, Some(&report), now))
    })?;
    Ok(())
}

pub(super) fn touch(store: &EtcdStore, node: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    update(store, "updating a node's last contact", node, |r| {
        Ok(seen(r, None, now))
    })?;
    Ok(())
}
