//! Node operations on redb: the approval flow, state changes, fleet certificates, reports.

use time::OffsetDateTime;

use super::RedbStore;
use super::tables::{self, NODES};
use crate::store::records::{seen, with_fleet_cert};
use crate::store::{NodeRecord, NodeState, StoreError, transitions};

/// Applies `f` to a known node's record in one write transaction and stores the result.
fn update(
    store: &RedbStore,
    node: &str,
    f: impl FnOnce(NodeRecord) -> Result<NodeRecord, StoreError>,
) -> Result<NodeRecord, StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(NODES)?;
        let record: NodeRecord =
            tables::get(&table, "nodes", node)?.ok_or_else(|| StoreError::UnknownNode {
                node: node.to_owned(),
            })?;
        let record = f(record)?;
        tables::put(&mut table, "nodes", node, &record)?;
        Ok(record)
    })
}

pub(super) fn upsert_pending(
    store: &RedbStore,
    node: &str,
    csr_pem: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(NODES)?;
        let existing = tables::get(&table, "nodes", node)?;
        let record = transitions::ask(existing, node, csr_pem, now)?;
        tables::put(&mut table, "nodes", node, &record)?;
        Ok(record)
    })
}

pub(super) fn set_state(
    store: &RedbStore,
    node: &str,
    state: NodeState,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    update(store, node, |r| transitions::set_state(r, state, by, now))
}

pub(super) fn get(store: &RedbStore, node: &str) -> Result<Option<NodeRecord>, StoreError> {
    store.read(|tx| tables::get(&tx.open_table(NODES)?, "nodes", node))
}

pub(super) fn all(store: &RedbStore) -> Result<Vec<NodeRecord>, StoreError> {
    store.read(|tx| tables::all(&tx.open_table(NODES)?, "nodes"))
}

pub(super) fn record_fleet_cert(
    store: &RedbStore,
    node: &str,
    serial: &str,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let serial = crate::store::records::normalize_serial(serial)?;
    update(store, node, |r| with_fleet_cert(r, serial, not_after, now))?;
    Ok(())
}

pub(super) fn record_report(
    store: &RedbStore,
    node: &str,
    report: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    update(store, node, |r| Ok(seen(r, Some(&report), now)))?;
    Ok(())
}

pub(super) fn touch(store: &RedbStore, node: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    update(store, node, |r| Ok(seen(r, None, now)))?;
    Ok(())
}
