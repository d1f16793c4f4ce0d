//! Node operations on etcd: the approval flow, state changes, fleet certificates, reports.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::EtcdStore;
use super::stm::{Tx, atomically};
use crate::store::records::{normalize_serial, seen, with_fleet_cert};
use crate::store::{NodeRecord, NodeState, PendingAsk, StoreError, transitions};

/// Pending nodes expired per transaction at most (etcd allows 128 operations by default).
const EXPIRE_AT_ONCE: usize = 50;

/// A `pending/<name>` index entry: one per pending node, written and deleted with its record.
#[derive(Serialize, Deserialize)]
pub(super) struct PendingEntry {
    pub name: String,
    /// Unix seconds: the node's `enrolled_at`.
    pub first_seen: i64,
}

impl PendingEntry {
    pub fn of(record: &NodeRecord) -> Self {
        Self {
            name: record.name.clone(),
            first_seen: record.enrolled_at.unix_timestamp(),
        }
    }
}

/// Keeps the `pending/` index in step when a node's record goes from `was` to `now`.
pub(super) fn sync_index(
    store: &EtcdStore,
    tx: &mut Tx<'_>,
    name: &str,
    was: Option<NodeState>,
    now: Option<&NodeRecord>,
) -> Result<(), StoreError> {
    let pending_now = now.is_some_and(|r| r.state == NodeState::Pending);
    match now {
        Some(record) if pending_now && was != Some(NodeState::Pending) => tx.put(
            "pending",
            &store.keys.pending_entry(name),
            &PendingEntry::of(record),
        ),
        _ if !pending_now && was == Some(NodeState::Pending) => {
            tx.delete(&store.keys.pending_entry(name));
            Ok(())
        }
        _ => Ok(()),
    }
}

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
        let was = record.state;
        let record = f(record)?;
        tx.put("nodes", &key, &record)?;
        sync_index(store, tx, node, Some(was), Some(&record))?;
        Ok(record)
    })
}

pub(super) fn upsert_pending(
    store: &EtcdStore,
    node: &str,
    ask: &PendingAsk,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    let key = store.keys.node(node);
    atomically(store, "recording a pending node", |tx| {
        let existing: Option<NodeRecord> = tx.get("nodes", &key)?;
        let was = existing.as_ref().map(|r| r.state);
        let mut generation = None;
        let count = || {
            // The guard first, then the range it protects (see `stm`).
            let gen_now: u64 = tx
                .get("pending_gen", &store.keys.pending_gen())?
                .unwrap_or(0);
            generation = Some(gen_now);
            let entries: Vec<PendingEntry> = tx.scan_guarded("pending", &store.keys.pending())?;
            Ok(entries.len())
        };
        let record = transitions::ask(existing, node, ask, count, now)?;
        tx.put("nodes", &key, &record)?;
        sync_index(store, tx, node, was, Some(&record))?;
        if let Some(generation) = generation {
            tx.put(
                "pending_gen",
                &store.keys.pending_gen(),
                &generation.wrapping_add(1),
            )?;
        }
        Ok(record)
    })
}

pub(super) fn approve_key(
    store: &EtcdStore,
    node: &str,
    fingerprint: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    update(store, "approving a node's key", node, |r| {
        transitions::approve_key(r, fingerprint, by, now)
    })
}

pub(super) fn delete(store: &EtcdStore, node: &str) -> Result<NodeRecord, StoreError> {
    let key = store.keys.node(node);
    atomically(store, "deleting a node", |tx| {
        let record: NodeRecord = tx
            .get("nodes", &key)?
            .ok_or_else(|| StoreError::UnknownNode {
                node: node.to_owned(),
            })?;
        transitions::deletable(&record)?;
        tx.delete(&key);
        sync_index(store, tx, node, Some(record.state), None)?;
        Ok(record)
    })
}

/// Reads the index (small: at most `[api] max_pending` entries) for candidates, then drops
/// each expired node with its entry, a batch per transaction.
pub(super) fn expire_pending(
    store: &EtcdStore,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<Vec<NodeRecord>, StoreError> {
    let entries: Vec<PendingEntry> = store.all("pending", &store.keys.pending())?;
    let due: Vec<String> = entries
        .into_iter()
        .filter(|e| e.first_seen.saturating_add(ttl.whole_seconds()) <= now.unix_timestamp())
        .map(|e| e.name)
        .collect();
    let mut dropped = Vec::new();
    for batch in due.chunks(EXPIRE_AT_ONCE) {
        dropped.extend(atomically(store, "expiring pending nodes", |tx| {
            let mut out = Vec::new();
            for name in batch {
                let key = store.keys.node(name);
                match tx.get::<NodeRecord>("nodes", &key)? {
                    Some(record) if transitions::pending_expired(&record, now, ttl) => {
                        tx.delete(&key);
                        tx.delete(&store.keys.pending_entry(name));
                        out.push(record);
                    }
                    // Approved, denied or gone since: its entry went with that change.
                    _ => {}
                }
            }
            Ok(out)
        })?);
    }
    Ok(dropped)
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
    key_fingerprint: &str,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let serial = normalize_serial(serial)?;
    update(store, "recording a fleet certificate", node, |r| {
        with_fleet_cert(
            r,
            serial.clone(),
            key_fingerprint.to_owned(),
            not_after,
            now,
        )
    })?;
    Ok(())
}

pub(super) fn record_report(
    store: &EtcdStore,
    node: &str,
    report: calseg_api::report::Report,
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
