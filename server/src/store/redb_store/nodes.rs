//! Node operations on redb: the approval flow, state changes, fleet certificates, reports.

use time::{Duration, OffsetDateTime};

use super::RedbStore;
use super::tables::{self, NODES};
use crate::store::records::{seen, with_fleet_cert};
use crate::store::{NodeRecord, NodeState, PendingAsk, StoreError, transitions};

/// Only the state of a stored node: counting pending nodes skips decoding the rest.
#[derive(serde::Deserialize)]
struct StateOnly {
    state: NodeState,
}

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
    ask: &PendingAsk,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(NODES)?;
        let existing = tables::get(&table, "nodes", node)?;
        // One writer at a time: the count cannot change before this commits.
        let count = || {
            let states: Vec<StateOnly> = tables::all(&table, "nodes")?;
            Ok(states
                .iter()
                .filter(|s| s.state == NodeState::Pending)
                .count())
        };
        let record = transitions::ask(existing, node, ask, count, now)?;
        tables::put(&mut table, "nodes", node, &record)?;
        Ok(record)
    })
}

pub(super) fn approve_key(
    store: &RedbStore,
    node: &str,
    fingerprint: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    update(store, node, |r| {
        transitions::approve_key(r, fingerprint, by, now)
    })
}

pub(super) fn delete(store: &RedbStore, node: &str) -> Result<NodeRecord, StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(NODES)?;
        let record: NodeRecord =
            tables::get(&table, "nodes", node)?.ok_or_else(|| StoreError::UnknownNode {
                node: node.to_owned(),
            })?;
        transitions::deletable(&record)?;
        table.remove(node)?;
        Ok(record)
    })
}

pub(super) fn expire_pending(
    store: &RedbStore,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<Vec<NodeRecord>, StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(NODES)?;
        let all: Vec<NodeRecord> = tables::all(&table, "nodes")?;
        let expired: Vec<NodeRecord> = all
            .into_iter()
            .filter(|r| transitions::pending_expired(r, now, ttl))
            .collect();
        for record in &expired {
            table.remove(record.name.as_str())?;
        }
        Ok(expired)
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
    key_fingerprint: &str,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let serial = crate::store::records::normalize_serial(serial)?;
    let key = key_fingerprint.to_owned();
    update(store, node, |r| {
        with_fleet_cert(r, serial, key, not_after, now)
    })?;
    Ok(())
}

pub(super) fn record_report(
    store: &RedbStore,
    node: &str,
    report: calseg_api::report::Report,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    update(store, node, |r| Ok(seen(r, Some(&report), now)))?;
    Ok(())
}

pub(super) fn touch(store: &RedbStore, node: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    update(store, node, |r| Ok(seen(r, None, now)))?;
    Ok(())
}
