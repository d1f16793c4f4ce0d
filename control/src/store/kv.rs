//! The small transactional key-value interface both backends implement ([`Kv`], [`Txn`]), over
//! which every store operation (module `ops`) is written once.
//!
//! The operations name logical tables ([`Space`]) and keys ([`Key`]); each backend maps them to
//! what it has always stored, byte for byte: redb to its typed tables, etcd to keys under its
//! prefix. Some spaces exist only for etcd, where several replicas write at once (the guards
//! `pending_gen` and `leases_gen`, the counters `audit_seq` and `policy/head`, the `pending/`
//! index): redb, with one writer at a time, derives their reads from its tables and ignores
//! their writes.
//!
//! A write may run more than once (etcd retries it when a key it read changed before the
//! commit), so an operation is a pure function of what it reads: no effects outside the
//! [`Txn`]. Ranges ([`Txn::scan`]) are not compared key by key at commit: an operation that
//! decides on a range reads the range's guard first and bumps it when it writes.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::codec::{decode, encode};

/// A logical table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Tokens,
    Nodes,
    /// The index of pending nodes (name and first contact), kept with their records.
    Pending,
    /// The guard of `Pending`, bumped by every new pending node.
    PendingGen,
    Issued,
    /// The certificates of one node ([`Key::Pair`] node, serial), written with `Issued`.
    IssuedByNode,
    /// By seq ([`Key::Num`]).
    Audit,
    /// The last audit seq handed out.
    AuditSeq,
    Leases,
    /// The guard of `Leases`, bumped by every lease write.
    LeasesGen,
    /// By revision ([`Key::Num`]).
    PolicyRevisions,
    /// The latest policy revision.
    PolicyHead,
    /// By revision ([`Key::Num`]): a [`PolicyText`](super::PolicyText).
    PolicyTexts,
    /// The latest rollout in waves ([`Key::One`]).
    Rollout,
    /// The latest rotation of the etcd client CA ([`Key::One`]).
    CaRotation,
}

impl Space {
    /// The table's name in errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Nodes => "nodes",
            Self::Pending => "pending",
            Self::PendingGen => "pending_gen",
            Self::Issued => "issued",
            Self::IssuedByNode => "issued_by_node",
            Self::Audit => "audit",
            Self::AuditSeq => "audit_seq",
            Self::Leases => "leases",
            Self::LeasesGen => "leases_gen",
            Self::PolicyRevisions | Self::PolicyHead => "policy_revisions",
            Self::PolicyTexts => "policy_texts",
            Self::Rollout => "rollout",
            Self::CaRotation => "ca_rotation",
        }
    }
}

/// A key within a [`Space`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// The one entry of a single-valued space (guards, counters, the rollout).
    One,
    Name(String),
    Num(u64),
    /// A node and a serial (`IssuedByNode`).
    Pair(String, String),
}

impl Key {
    pub fn name(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One => f.write_str("current"),
            Self::Name(name) => f.write_str(name),
            Self::Num(n) => write!(f, "{n}"),
            Self::Pair(a, b) => write!(f, "{a}/{b}"),
        }
    }
}

/// A stored value and the key it is stored under, as the backend names it in errors.
#[derive(Debug)]
pub struct Stored {
    pub key: String,
    pub value: Vec<u8>,
}

/// One transaction's view of the store.
pub trait Txn {
    /// The value at `key`. In a write, the commit holds only if it is still unchanged.
    fn get(&mut self, space: Space, key: &Key) -> Result<Option<Stored>, StoreError>;

    /// Whether `key` exists, not compared at commit: only for keys that, once they matter, are
    /// never deleted (nodes that may hold certificates), so that a refusal on absence is the
    /// only decision it feeds.
    fn exists_unguarded(&mut self, space: Space, key: &Key) -> Result<bool, StoreError>;

    /// Every entry of `space` in key order (`within`: of this node only, for `IssuedByNode`).
    /// Not compared at commit: read the range's guard first (see the module docs).
    fn scan(&mut self, space: Space, within: Option<&str>) -> Result<Vec<Stored>, StoreError>;

    /// Up to `limit` entries of a numbered space from key `from` on, in order.
    fn range(&mut self, space: Space, from: u64, limit: usize) -> Result<Vec<Stored>, StoreError>;

    /// The last `limit` entries of a numbered space, newest first.
    fn newest(&mut self, space: Space, limit: usize) -> Result<Vec<Stored>, StoreError>;

    fn put(&mut self, space: Space, key: Key, value: Vec<u8>) -> Result<(), StoreError>;

    fn delete(&mut self, space: Space, key: Key) -> Result<(), StoreError>;
}

/// A backend: runs transactions, and bulk-loads an empty store.
pub trait Kv: Send + Sync {
    /// Runs `f` on a consistent view.
    fn read<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Runs `f` and commits its writes atomically if it succeeds; a refusal (`Err`) writes
    /// nothing. `f` may run more than once. `what` names the operation in errors.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Every stored entry with its space, from one consistent view: at least those of the
    /// primary spaces (the snapshot ignores guards, counters and indexes); an error for an entry
    /// this code does not know.
    fn dump(&self) -> Result<Vec<(Space, Stored)>, StoreError>;

    /// Writes `records` into a store that holds nothing, or refuses with `NotEmpty`.
    fn load_empty(&self, records: Vec<(Space, Key, Vec<u8>)>) -> Result<(), StoreError>;

    /// See [`Store::reads_without_blocking`](super::Store::reads_without_blocking).
    fn reads_without_blocking(&self) -> bool {
        false
    }
}

/// Reads and decodes the value at `key`.
pub fn get<T: DeserializeOwned>(
    tx: &mut dyn Txn,
    space: Space,
    key: Key,
) -> Result<Option<T>, StoreError> {
    tx.get(space, &key)?
        .map(|s| decode(space.name(), &s.key, &s.value))
        .transpose()
}

/// Encodes and writes `value` at `key`.
pub fn put<T: Serialize>(
    tx: &mut dyn Txn,
    space: Space,
    key: Key,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(space.name(), &key.to_string(), value)?;
    tx.put(space, key, bytes)
}

/// Decodes every value of `stored`.
pub fn decode_all<T: DeserializeOwned>(
    space: Space,
    stored: Vec<Stored>,
) -> Result<Vec<T>, StoreError> {
    stored
        .iter()
        .map(|s| decode(space.name(), &s.key, &s.value))
        .collect()
}

/// Every record of `space` (see [`Txn::scan`]), decoded.
pub fn scan<T: DeserializeOwned>(
    tx: &mut dyn Txn,
    space: Space,
    within: Option<&str>,
) -> Result<Vec<T>, StoreError> {
    decode_all(space, tx.scan(space, within)?)
}
