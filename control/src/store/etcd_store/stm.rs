//! Optimistic transactions: read keys (remembering each one's `mod_revision`), decide with the
//! same pure rules as the embedded store, then commit the writes in one etcd `Txn` that holds
//! only if none of the keys read has changed since. A lost race is simply run again.
//!
//! A refusal counts as an outcome too: when it rests on more than one read, the same compare
//! (without writes) confirms that the reads were one consistent view before it is returned.
//! Range reads are not compared key by key; a range is protected by a guard key that every
//! writer of the range reads and bumps (see `keys`).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EtcdStore;
use crate::store::StoreError;

/// Runs of one operation before it gives up with `Contention`.
const ATTEMPTS: u32 = 100;
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// The read set and write set of one attempt.
pub(super) struct Tx<'a> {
    store: &'a EtcdStore,
    /// key -> mod_revision when read (0: absent).
    reads: BTreeMap<String, i64>,
    /// key -> new value (`None`: delete).
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    fn new(store: &'a EtcdStore) -> Self {
        Self {
            store,
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
        }
    }

    /// Reads and decodes `key` (`table` names it in errors); the commit compares it.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        table: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let kv = self.store.etcd.get(table, key)?;
        let revision = kv.as_ref().map_or(0, |kv| kv.mod_revision());
        self.reads.entry(key.to_owned()).or_insert(revision);
        kv.map(|kv| super::decode(table, key, kv.value()))
            .transpose()
    }

    /// Whether `key` exists, without comparing it at commit: only for keys that, once they
    /// matter, are never deleted (nodes that may hold certificates: only pending and denied
    /// ones are deleted), so that a refusal on absence is the only decision it feeds.
    pub fn exists_unguarded(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.store.etcd.get("checking a key", key)?.is_some())
    }

    /// Reads every record under `prefix` without comparing them one by one: the caller must
    /// first [`get`](Self::get) the guard key that every writer of this range bumps (first: so
    /// that a write landing between the two reads changes the guard this commit compares).
    pub fn scan_guarded<T: DeserializeOwned>(
        &mut self,
        table: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        super::decode_all(table, self.store.etcd.scan(table, prefix)?)
    }

    pub fn put<T: Serialize>(
        &mut self,
        table: &'static str,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = super::encode(table, key, value)?;
        self.writes.insert(key.to_owned(), Some(bytes));
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        self.writes.insert(key.to_owned(), None);
    }

    /// Commits the writes (or, with `keep_writes` false, only checks the reads): true if no key
    /// read has changed.
    fn commit(self, what: &str, keep_writes: bool) -> Result<bool, StoreError> {
        let writes = keep_writes && !self.writes.is_empty();
        // One read is a consistent view by itself.
        if !writes && self.reads.len() <= 1 {
            return Ok(true);
        }
        let compares: Vec<Compare> = self
            .reads
            .iter()
            .map(|(key, rev)| Compare::mod_revision(key.as_str(), CompareOp::Equal, *rev))
            .collect();
        let ops: Vec<TxnOp> = if writes {
            self.writes
                .into_iter()
                .map(|(key, value)| match value {
                    Some(bytes) => TxnOp::put(key, bytes, None),
                    None => TxnOp::delete(key, None),
                })
                .collect()
        } else {
            Vec::new()
        };
        let txn = Txn::new().when(compares).and_then(ops);
        Ok(self.store.etcd.txn(what, txn)?.succeeded())
    }
}

/// Runs `f` until its reads still hold at commit, at most [`ATTEMPTS`] times, with growing
/// jittered pauses between runs. `f` must not have effects outside `tx`: it may run again.
pub(super) fn atomically<T>(
    store: &EtcdStore,
    what: &str,
    mut f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..ATTEMPTS {
        let mut tx = Tx::new(store);
        let outcome = f(&mut tx);
        if let Err(e) = &outcome
            && is_infrastructure(e)
        {
            return outcome;
        }
        if tx.commit(what, outcome.is_ok())? {
            return outcome;
        }
        std::thread::sleep(backoff + jitter(backoff));
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Err(StoreError::Contention {
        what: what.to_owned(),
        attempts: ATTEMPTS,
    })
}

/// Errors that say nothing about the records read: returned as they are, never re-checked.
fn is_infrastructure(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Unavailable { .. }
            | StoreError::EtcdRefused { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Encode { .. }
            | StoreError::Random
            | StoreError::Contention { .. }
    )
}

/// A random pause of up to `base`, so that replicas that collided spread out.
pub(super) fn jitter(base: Duration) -> Duration {
    crate::jitter::up_to(base)
}
