//! Node operations: the approval flow, state changes, fleet certificates, reports, and the
//! `pending` index kept in step with the records.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::store::kv::{self, Key, Kv, Space, Txn};
use crate::store::records::{normalize_serial, seen, with_fleet_cert};
use crate::store::{
    FleetCert, NodeRecord, NodeStanding, NodeState, PendingAsk, StoreError, transitions,
};

/// Pending nodes expired per transaction at most (etcd allows 128 operations by default).
const EXPIRE_AT_ONCE: usize = 50;

/// A `pending` index entry: one per pending node, written and deleted with its record.
#[derive(Serialize, Deserialize)]
pub(in crate::store) struct PendingEntry {
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

/// Keeps the `pending` index in step when a node's record goes from `was` to `now`.
pub(super) fn sync_index(
    tx: &mut dyn Txn,
    name: &str,
    was: Option<NodeState>,
    now: Option<&NodeRecord>,
) -> Result<(), StoreError> {
    let pending_now = now.is_some_and(|r| r.state == NodeState::Pending);
    match now {
        Some(record) if pending_now && was != Some(NodeState::Pending) => kv::put(
            tx,
            Space::Pending,
            Key::name(name),
            &PendingEntry::of(record),
        ),
        _ if !pending_now && was == Some(NodeState::Pending) => {
            tx.delete(Space::Pending, Key::name(name))
        }
        _ => Ok(()),
    }
}

/// A known node's record, or `UnknownNode`.
fn known(tx: &mut dyn Txn, node: &str) -> Result<NodeRecord, StoreError> {
    kv::get(tx, Space::Nodes, Key::name(node))?.ok_or_else(|| StoreError::UnknownNode {
        node: node.to_owned(),
    })
}

/// Applies `f` to a known node's record in one transaction and stores the result.
fn update(
    store: &impl Kv,
    what: &str,
    node: &str,
    f: impl Fn(NodeRecord) -> Result<NodeRecord, StoreError>,
) -> Result<NodeRecord, StoreError> {
    store.write(what, |tx| {
        let record = known(tx, node)?;
        let was = record.state;
        let record = f(record)?;
        kv::put(tx, Space::Nodes, Key::name(node), &record)?;
        sync_index(tx, node, Some(was), Some(&record))?;
        Ok(record)
    })
}

pub(super) fn upsert_pending(
    store: &impl Kv,
    node: &str,
    ask: &PendingAsk,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    store.write("recording a pending node", |tx| {
        let existing: Option<NodeRecord> = kv::get(tx, Space::Nodes, Key::name(node))?;
        let was = existing.as_ref().map(|r| r.state);
        let mut generation = None;
        let record = {
            let count = || {
                // The guard first, then the range it protects.
                let gen_now: u64 = kv::get(tx, Space::PendingGen, Key::One)?.unwrap_or(0);
                generation = Some(gen_now);
                Ok(tx.scan(Space::Pending, None)?.len())
            };
            transitions::ask(existing, node, ask, count, now)?
        };
        kv::put(tx, Space::Nodes, Key::name(node), &record)?;
        sync_index(tx, node, was, Some(&record))?;
        if let Some(generation) = generation {
            kv::put(tx, Space::PendingGen, Key::One, &generation.wrapping_add(1))?;
        }
        Ok(record)
    })
}

pub(super) fn approve_key(
    store: &impl Kv,
    node: &str,
    fingerprint: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    update(store, "approving a node's key", node, |r| {
        transitions::approve_key(r, fingerprint, by, now)
    })
}

pub(super) fn delete(store: &impl Kv, node: &str) -> Result<NodeRecord, StoreError> {
    store.write("deleting a node", |tx| {
        let record = known(tx, node)?;
        transitions::deletable(&record)?;
        tx.delete(Space::Nodes, Key::name(node))?;
        sync_index(tx, node, Some(record.state), None)?;
        Ok(record)
    })
}

/// Reads the index (small: at most `[api] max_pending` entries) for candidates, then drops
/// each expired node with its entry, a batch per transaction.
pub(super) fn expire_pending(
    store: &impl Kv,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<Vec<NodeRecord>, StoreError> {
    let entries: Vec<PendingEntry> = store.read("reading pending nodes", |tx| {
        kv::scan(tx, Space::Pending, None)
    })?;
    let due: Vec<String> = entries
        .into_iter()
        .filter(|e| e.first_seen.saturating_add(ttl.whole_seconds()) <= now.unix_timestamp())
        .map(|e| e.name)
        .collect();
    let mut dropped = Vec::new();
    for batch in due.chunks(EXPIRE_AT_ONCE) {
        dropped.extend(store.write("expiring pending nodes", |tx| {
            let mut out = Vec::new();
            for name in batch {
                match kv::get::<NodeRecord>(tx, Space::Nodes, Key::name(name))? {
                    Some(record) if transitions::pending_expired(&record, now, ttl) => {
                        tx.delete(Space::Nodes, Key::name(name))?;
                        tx.delete(Space::Pending, Key::name(name))?;
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
    store: &impl Kv,
    node: &str,
    state: NodeState,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    update(store, "changing a node's state", node, |r| {
        transitions::set_state(r, state, by, now)
    })
}

pub(super) fn get(store: &impl Kv, node: &str) -> Result<Option<NodeRecord>, StoreError> {
    store.read("reading a node", |tx| {
        kv::get(tx, Space::Nodes, Key::name(node))
    })
}

/// The node's standing alone: its record decoded into [`NodeStanding`].
pub(super) fn standing(store: &impl Kv, node: &str) -> Result<Option<NodeStanding>, StoreError> {
    store.read("reading a node", |tx| {
        kv::get(tx, Space::Nodes, Key::name(node))
    })
}

/// By name (etcd's escaped keys sort differently for names with unusual bytes).
pub(super) fn all(store: &impl Kv) -> Result<Vec<NodeRecord>, StoreError> {
    let mut nodes: Vec<NodeRecord> =
        store.read("reading nodes", |tx| kv::scan(tx, Space::Nodes, None))?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

pub(super) fn record_fleet_cert(
    store: &impl Kv,
    node: &str,
    serial: &str,
    key_fingerprint: &str,
    issuer: &str,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let serial = normalize_serial(serial)?;
    update(store, "recording a fleet certificate", node, |r| {
        with_fleet_cert(
            r,
            FleetCert {
                serial: serial.clone(),
                not_after,
                key_fingerprint: Some(key_fingerprint.to_owned()),
                issuer: Some(issuer.to_owned()),
            },
            now,
        )
    })?;
    Ok(())
}

pub(super) fn record_report(
    store: &impl Kv,
    node: &str,
    report: calseg_api::report::Report,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    update(store, "recording a report", node, |r| {
        Ok(seen(r, Some(&report), now))
    })?;
    Ok(())
}

pub(super) fn touch(store: &impl Kv, node: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    update(store, "updating a node's last contact", node, |r| {
        Ok(seen(r, None, now))
    })?;
    Ok(())
}
