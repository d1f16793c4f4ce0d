//! Optimistic transactions, the [`Txn`](kv::Txn) of etcd: read keys (remembering each one's
//! `mod_revision`), run the shared operation on them, then commit its writes in one etcd `Txn`
//! that holds only if none of the keys read has changed since. A lost race is simply run again.
//!
//! A refusal counts as an outcome too: when it rests on more than one read, the same compare
//! (without writes) confirms that the reads were one consistent view before it is returned.
//! Range reads are not compared key by key; a range is protected by a guard key that every
//! writer of the range reads and bumps (see `keys`).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp};

use super::EtcdStore;
use super::keys::{Keys, range_end};
use super::rpc::Etcd;
use crate::store::StoreError;
use crate::store::kv::{self, Key, Space, Stored};

/// Runs of one operation before it gives up with `Contention`.
const ATTEMPTS: u32 = 100;
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// The read set and write set of one attempt; a read-only one records no reads.
pub(super) struct Tx<'a> {
    etcd: &'a Etcd,
    keys: &'a Keys,
    /// The operation, for errors.
    what: &'a str,
    writing: bool,
    /// key -> mod_revision when read (0: absent).
    reads: BTreeMap<String, i64>,
    /// key -> new value (`None`: delete).
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    pub fn new(store: &'a EtcdStore, what: &'a str, writing: bool) -> Self {
        Self {
            etcd: &store.etcd,
            keys: &store.keys,
            what,
            writing,
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
        }
    }

    /// Commits the writes (or, with `keep_writes` false, only checks the reads): true if no key
    /// read has changed.
    fn commit(self, keep_writes: bool) -> Result<bool, StoreError> {
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
        Ok(self.etcd.txn(self.what, txn)?.succeeded())
    }
}

/// Decodes nothing: the stored key and value.
fn stored(kvs: Vec<KeyValue>) -> Vec<Stored> {
    kvs.into_iter()
        .map(|kv| {
            let (key, value) = kv.into_key_value();
            let key = String::from_utf8_lossy(&key).into_owned();
            Stored { key, value }
        })
        .collect()
}

impl kv::Txn for Tx<'_> {
    fn get(&mut self, space: Space, key: &Key) -> Result<Option<Stored>, StoreError> {
        let key = self.keys.key(space, key);
        let kv = self.etcd.get(self.what, &key)?;
        if self.writing {
            let revision = kv.as_ref().map_or(0, KeyValue::mod_revision);
            self.reads.entry(key.clone()).or_insert(revision);
        }
        Ok(kv.map(|kv| Stored {
            key,
            value: kv.into_key_value().1,
        }))
    }

    fn exists_unguarded(&mut self, space: Space, key: &Key) -> Result<bool, StoreError> {
        let key = self.keys.key(space, key);
        Ok(self.etcd.get(self.what, &key)?.is_some())
    }

    fn scan(&mut self, space: Space, within: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let prefix = self.keys.range(space, within);
        Ok(stored(self.etcd.scan(self.what, &prefix)?))
    }

    fn range(&mut self, space: Space, from: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let from = self.keys.key(space, &Key::Num(from));
        let end = range_end(&self.keys.space(space));
        Ok(stored(self.etcd.range(self.what, &from, &end, limit)?))
    }

    fn newest(&mut self, space: Space, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let prefix = self.keys.space(space);
        Ok(stored(self.etcd.last(self.what, &prefix, limit)?))
    }

    fn put(&mut self, space: Space, key: Key, value: Vec<u8>) -> Result<(), StoreError> {
        self.writes.insert(self.keys.key(space, &key), Some(value));
        Ok(())
    }

    fn delete(&mut self, space: Space, key: Key) -> Result<(), StoreError> {
        self.writes.insert(self.keys.key(space, &key), None);
        Ok(())
    }
}

/// Runs `f` until its reads still hold at commit, at most [`ATTEMPTS`] times, with growing
/// jittered pauses between runs. `f` must not have effects outside `tx`: it may run again.
pub(super) fn atomically<T>(
    store: &EtcdStore,
    what: &str,
    mut f: impl FnMut(&mut dyn kv::Txn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..ATTEMPTS {
        let mut tx = Tx::new(store, what, true);
        let outcome = f(&mut tx);
        if let Err(e) = &outcome
            && is_infrastructure(e)
        {
            return outcome;
        }
        if tx.commit(outcome.is_ok())? {
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
