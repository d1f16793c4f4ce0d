//! Export and import of a whole [`StoreSnapshot`] on etcd.
//!
//! Export is one paged read of the prefix at a single revision: a consistent view.
//!
//! Import cannot be one transaction for a real fleet (etcd allows 128 operations and 1.5 MiB per
//! request by default), so it runs in three steps: a transaction that claims the prefix only if
//! it holds no key at all and writes the marker `import_in_progress`; batches of writes, each
//! valid only while the marker stands; and a last transaction that deletes the marker. If a
//! batch fails, the import deletes the whole prefix again. If even that fails, the marker stays:
//! [`EtcdStore::connect`] then refuses the prefix (`ImportIncomplete`) and a new import refuses
//! it (`NotEmpty`), so a partial copy is never served. No server may use the prefix during an
//! import.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::Serialize;

use super::{EtcdStore, decode};
use crate::store::StoreError;
use crate::store::snapshot::{SNAPSHOT_FORMAT, SnapshotToken, StoreSnapshot};
use crate::store::tokens::TokenRecord;

/// Operations per import transaction (etcd's default limit is 128).
const BATCH_OPS: usize = 100;
/// Bytes of keys and values per import transaction (etcd's default limit is 1.5 MiB).
const BATCH_BYTES: usize = 1 << 20;

pub(super) fn export(store: &EtcdStore) -> Result<StoreSnapshot, StoreError> {
    let keys = &store.keys;
    let mut out = StoreSnapshot {
        format: SNAPSHOT_FORMAT,
        ..StoreSnapshot::default()
    };
    // Derived keys: counters, guards and the per-node copies of certificates.
    let derived = [
        keys.audit_seq(),
        keys.leases_gen(),
        keys.policy_head(),
        keys.pending_gen(),
    ];
    let by_node = format!("{}issued_by_node/", keys.prefix());
    for kv in store.etcd.scan("exporting the store", keys.prefix())? {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let value = kv.value();
        let is = |prefix: String| key.starts_with(&prefix);
        if is(keys.tokens()) {
            let token: TokenRecord = decode("tokens", &key, value)?;
            out.tokens.push(SnapshotToken::from(token));
        } else if is(keys.nodes()) {
            out.nodes.push(decode("nodes", &key, value)?);
        } else if is(keys.issued()) {
            out.issued.push(decode("issued", &key, value)?);
        } else if is(keys.audit()) {
            out.audit.push(decode("audit", &key, value)?);
        } else if is(keys.leases()) {
            out.leases.push(decode("leases", &key, value)?);
        } else if is(keys.policy_revisions()) {
            out.policy_revisions
                .push(decode("policy_revisions", &key, value)?);
        } else if is(keys.policy_texts()) {
            out.policy_texts.push(decode("policy_texts", &key, value)?);
        } else if key == keys.rollout() {
            out.rollout = Some(decode("rollout", &key, value)?);
        } else if key == keys.import_marker() {
            let store = keys.prefix().to_owned();
            return Err(StoreError::ImportIncomplete { store, marker: key });
        } else if !derived.contains(&key)
            && !key.starts_with(&by_node)
            && !key.starts_with(&keys.pending())
        {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "etcd key {key:?} is not one this calseg-server knows; export with the \
                     calseg-server version that wrote it"
                ),
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Every key and value the snapshot becomes, counters and per-node copies included.
fn records(store: &EtcdStore, s: &StoreSnapshot) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let keys = &store.keys;
    let mut out = Vec::new();
    for t in &s.tokens {
        add(&mut out, "tokens", keys.token(&t.id), &TokenRecord::from(t))?;
    }
    for n in &s.nodes {
        add(&mut out, "nodes", keys.node(&n.name), n)?;
        if n.state == crate::store::NodeState::Pending {
            let entry = super::nodes::PendingEntry::of(n);
            add(&mut out, "pending", keys.pending_entry(&n.name), &entry)?;
        }
    }
    for c in &s.issued {
        add(&mut out, "issued", keys.cert(&c.serial), c)?;
        add(
            &mut out,
            "issued_by_node",
            keys.node_cert(&c.node, &c.serial),
            c,
        )?;
    }
    for e in &s.audit {
        add(&mut out, "audit", keys.audit_entry(e.seq), e)?;
    }
    if let Some(last) = s.audit.last() {
        add(&mut out, "audit_seq", keys.audit_seq(), &last.seq)?;
    }
    for l in &s.leases {
        add(&mut out, "leases", keys.lease(&l.id), l)?;
    }
    for r in &s.policy_revisions {
        add(
            &mut out,
            "policy_revisions",
            keys.policy_revision(r.revision),
            r,
        )?;
    }
    if let Some(head) = s.policy_revisions.last() {
        add(&mut out, "policy_revisions", keys.policy_head(), head)?;
    }
    for t in &s.policy_texts {
        add(&mut out, "policy_texts", keys.policy_text(t.revision), t)?;
    }
    if let Some(rollout) = &s.rollout {
        add(&mut out, "rollout", keys.rollout(), rollout)?;
    }
    Ok(out)
}

/// Encodes `value` and appends it at `key`.
fn add<T: Serialize>(
    out: &mut Vec<(String, Vec<u8>)>,
    table: &'static str,
    key: String,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = super::encode(table, &key, value)?;
    out.push((key, bytes));
    Ok(())
}

pub(super) fn import(store: &EtcdStore, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
    snapshot.check()?;
    let records = records(store, snapshot)?;
    let (prefix, marker) = (store.keys.prefix(), store.keys.import_marker());
    let claim = Txn::new()
        .when([Compare::version(prefix, CompareOp::Equal, 0).with_prefix()])
        .and_then([TxnOp::put(marker.as_str(), b"{}".to_vec(), None)]);
    if !store.etcd.txn("starting the import", claim)?.succeeded() {
        let held = store
            .etcd
            .count("counting the keys of the target", prefix)?;
        return Err(StoreError::NotEmpty {
            store: format!("etcd prefix {prefix} at {}", store.etcd.endpoints),
            holds: format!("{held} key(s)"),
        });
    }
    let outcome = write_batches(store, &marker, records).and_then(|()| {
        let finish = Txn::new()
            .when([Compare::version(marker.as_str(), CompareOp::Greater, 0)])
            .and_then([TxnOp::delete(marker.as_str(), None)]);
        interrupted_unless(store.etcd.txn("finishing the import", finish)?.succeeded())
    });
    if outcome.is_err()
        && let Err(e) = store.etcd.delete_prefix("undoing a failed import", prefix)
    {
        tracing::warn!(error = %e, prefix, "a failed import left a partial copy behind");
    }
    outcome
}

/// Writes `records` in transactions of bounded size, each only while the marker stands.
fn write_batches(
    store: &EtcdStore,
    marker: &str,
    records: Vec<(String, Vec<u8>)>,
) -> Result<(), StoreError> {
    let mut batch: Vec<TxnOp> = Vec::new();
    let mut bytes = 0;
    let mut records = records.into_iter().peekable();
    while let Some((key, value)) = records.next() {
        bytes += key.len() + value.len();
        batch.push(TxnOp::put(key, value, None));
        let next_fits = records.peek().is_some_and(|(k, v)| {
            batch.len() < BATCH_OPS && bytes + k.len() + v.len() <= BATCH_BYTES
        });
        if !next_fits {
            let txn = Txn::new()
                .when([Compare::version(marker, CompareOp::Greater, 0)])
                .and_then(std::mem::take(&mut batch));
            interrupted_unless(store.etcd.txn("importing records", txn)?.succeeded())?;
            bytes = 0;
        }
    }
    Ok(())
}

/// The marker vanished under the import: someone deleted the prefix meanwhile.
fn interrupted_unless(succeeded: bool) -> Result<(), StoreError> {
    if succeeded {
        return Ok(());
    }
    Err(StoreError::Contention {
        what: "importing (the import marker was deleted by another process)".into(),
        attempts: 1,
    })
}
