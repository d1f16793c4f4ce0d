//! The whole prefix at once on etcd, for export and import of a
//! [`StoreSnapshot`](crate::store::StoreSnapshot).
//!
//! Export is one paged read of the prefix at a single revision: a consistent view. The
//! leader's key is not state and is left out, so a running fleet can be exported
//! (`calseg-server backup`).
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

use super::EtcdStore;
use crate::store::StoreError;
use crate::store::kv::{Key, Space, Stored};

/// Operations per import transaction (etcd's default limit is 128).
const BATCH_OPS: usize = 100;
/// Bytes of keys and values per import transaction (etcd's default limit is 1.5 MiB).
const BATCH_BYTES: usize = 1 << 20;

/// Every key under the prefix, each with its space.
pub(super) fn dump(store: &EtcdStore) -> Result<Vec<(Space, Stored)>, StoreError> {
    let keys = &store.keys;
    let mut out = Vec::new();
    for kv in store.etcd.scan("exporting the store", keys.prefix())? {
        let (key, value) = kv.into_key_value();
        let key = String::from_utf8_lossy(&key).into_owned();
        if key == keys.leader() {
            continue;
        }
        if key == keys.import_marker() {
            let store = keys.prefix().to_owned();
            return Err(StoreError::ImportIncomplete { store, marker: key });
        }
        let Some(space) = keys.space_of(&key) else {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "etcd key {key:?} is not one this calseg-server knows; export with the \
                     calseg-server version that wrote it"
                ),
            });
        };
        out.push((space, Stored { key, value }));
    }
    Ok(out)
}

/// Writes `records` into the prefix, which must hold no key at all.
pub(super) fn load_empty(
    store: &EtcdStore,
    records: Vec<(Space, Key, Vec<u8>)>,
) -> Result<(), StoreError> {
    let records = records
        .into_iter()
        .map(|(space, key, value)| (store.keys.key(space, &key), value))
        .collect();
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
