//! [`EtcdStore`]: the key-value backend ([`Kv`]) on etcd, so that several `calseg-server`
//! replicas share one state; the operations are the shared ones (`store::ops`). Every invariant
//! holds across processes through etcd transactions (module `stm`):
//! a token is never redeemed more often than its scope allows, serials never repeat, audit
//! sequence numbers are dense and never reused, live leases never exceed the budget, policy
//! revision numbers only grow.
//!
//! # Keys
//! Under the prefix (e.g. `/calseg/`), values are JSON of the same records as the embedded
//! store; names in keys are escaped (`%XX` for anything but `[A-Za-z0-9._-]`), numbers are
//! zero-padded to 20 digits.
//!
//! | key                                   | value |
//! |---------------------------------------|-------|
//! | `tokens/<id>`                         | token record (with the hash, never the secret) |
//! | `nodes/<name>`                        | [`NodeRecord`](crate::store::NodeRecord) |
//! | `pending/<name>`                      | the name and first contact of each pending node (an index) |
//! | `pending_gen`                         | guard of the `pending/` range, bumped by every new pending node |
//! | `issued/<serial>`                     | [`IssuedRecord`](crate::store::IssuedRecord) |
//! | `issued_by_node/<name>/<serial>`      | the same record again: `issued_for_node` is one range read |
//! | `audit/<seq>`                         | [`AuditEntry`](crate::store::AuditEntry) |
//! | `audit_seq`                           | the last seq handed out (a number) |
//! | `leases/<id>`                         | [`LeaseRecord`](crate::store::LeaseRecord) |
//! | `leases_gen`                          | guard of the `leases/` range, bumped by every lease write |
//! | `policy/revisions/<revision>`         | [`PolicyRevision`](crate::store::PolicyRevision) |
//! | `policy/head`                         | the latest `PolicyRevision` |
//! | `policy/texts/<revision>`             | the policy text, as a JSON string |
//! | `rollout`                             | [`RolloutRecord`](crate::store::RolloutRecord) |
//! | `ca_rotation`                         | [`CaRotationRecord`](crate::store::CaRotationRecord) |
//! | `import_in_progress`                  | only during (or after a failed) import |
//!
//! # Failure
//! Requests that fail transiently (no leader, a member down, timeouts) are retried with
//! backoff, then reported as `Unavailable`. If the final write of an operation times out, it may
//! have been applied: a retry by the caller then sees the result (for instance
//! `AlreadyUsedByNode` for its own redemption), never a second application.
//!
//! # Layout
//! - `rpc`: the private runtime, retries of transient failures, error mapping, paged reads.
//! - `keys`: the key layout.
//! - `stm`: optimistic transactions with bounded retries: the [`Txn`]
//!   the shared operations run on.
//! - `snapshot`: the whole prefix read at once, and the import of a snapshot in batches.

mod keys;
mod rpc;
mod snapshot;
mod stm;

use super::StoreError;
use super::kv::{Key, Kv, Space, Stored, Txn};
use crate::rbac::EtcdAccess;
use keys::Keys;
use rpc::Etcd;

/// The etcd-backed [`Store`](crate::store::Store): safe to share between server replicas, each with its own
/// `EtcdStore`. Blocking, like every store: call it from `spawn_blocking` or plain threads.
pub struct EtcdStore {
    etcd: Etcd,
    keys: Keys,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.etcd.endpoints)
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects with the server's client certificate (as `calseg-server` reaches etcd for RBAC)
    /// and checks that the store under `prefix` (e.g. `/calseg/`; it must start and end with
    /// `/`) is readable and holds no unfinished import. Blocking; starts a small runtime of its
    /// own that lives as long as the store.
    pub fn connect(access: &EtcdAccess, prefix: &str) -> Result<Self, StoreError> {
        let keys = Keys::new(prefix)?;
        let store = Self {
            etcd: Etcd::connect(access)?,
            keys,
        };
        let marker = store.keys.import_marker();
        if store.etcd.get("checking the store", &marker)?.is_some() {
            return Err(StoreError::ImportIncomplete {
                store: prefix.to_owned(),
                marker,
            });
        }
        Ok(store)
    }

    /// The key prefix the store lives under.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }
}

impl Kv for EtcdStore {
    fn read<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut stm::Tx::new(self, what, false))
    }

    fn write<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        stm::atomically(self, what, f)
    }

    fn dump(&self) -> Result<Vec<(Space, Stored)>, StoreError> {
        snapshot::dump(self)
    }

    fn load_empty(&self, records: Vec<(Space, Key, Vec<u8>)>) -> Result<(), StoreError> {
        snapshot::load_empty(self, records)
    }
}
