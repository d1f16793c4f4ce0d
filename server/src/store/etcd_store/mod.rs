//! [`EtcdStore`]: the [`Store`] contract on etcd, so that several `calseg-server` replicas share
//! one state. Every invariant holds across processes through etcd transactions (module `stm`):
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
//! - `stm`: optimistic transactions with bounded retries.
//! - `tokens`, `nodes`, `issued`, `audit`, `leases`, `policy`: the operations, one concern each.
//! - `snapshot`: export and import for `migrate-store`.

mod audit;
mod issued;
mod keys;
mod leases;
mod nodes;
mod policy;
mod rpc;
mod snapshot;
mod stm;
mod tokens;

use etcd_client::KeyValue;
use ring::rand::SystemRandom;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use super::codec::decode;
use super::records::whole_seconds;
use super::{
    AuditEntry, IssuedRecord, LeaseBudget, LeaseRecord, NewAuditEntry, NewToken, NodeRecord,
    NodeState, PendingAsk, PolicyRevision, RolloutRecord, Store, StoreError, StoreSnapshot,
    TokenInfo, TokenScope, TokenUse,
};
use crate::rbac::EtcdAccess;
use keys::Keys;
use rpc::Etcd;

pub(super) use super::codec::encode;

/// The etcd-backed [`Store`]: safe to share between server replicas, each with its own
/// `EtcdStore`. Blocking, like every store: call it from `spawn_blocking` or plain threads.
pub struct EtcdStore {
    etcd: Etcd,
    keys: Keys,
    rng: SystemRandom,
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
            rng: SystemRandom::new(),
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

    /// Every record under `prefix`, decoded, in key order.
    fn all<T: DeserializeOwned>(
        &self,
        table: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        decode_all(table, self.etcd.scan(table, prefix)?)
    }
}

/// Decodes the values of `kvs`; `table` and the key name a corrupt one.
fn decode_all<T: DeserializeOwned>(
    table: &'static str,
    kvs: Vec<KeyValue>,
) -> Result<Vec<T>, StoreError> {
    kvs.iter()
        .map(|kv| decode(table, &String::from_utf8_lossy(kv.key()), kv.value()))
        .collect()
}

impl Store for EtcdStore {
    fn create_token(
        &self,
        scope: TokenScope,
        ttl: Duration,
        now: OffsetDateTime,
        created_by: &str,
    ) -> Result<NewToken, StoreError> {
        tokens::create(self, scope, ttl, whole_seconds(now), created_by)
    }

    fn redeem_token(
        &self,
        token: &str,
        node: &str,
        now: OffsetDateTime,
    ) -> Result<TokenUse, StoreError> {
        tokens::redeem(self, token, node, whole_seconds(now))
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        tokens::list(self)
    }

    fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        tokens::delete(self, id)
    }

    fn upsert_pending_node(
        &self,
        node: &str,
        ask: &PendingAsk,
        now: OffsetDateTime,
    ) -> Result<NodeRecord, StoreError> {
        nodes::upsert_pending(self, node, ask, whole_seconds(now))
    }

    fn approve_key(
        &self,
        node: &str,
        fingerprint: &str,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<NodeRecord, StoreError> {
        nodes::approve_key(self, node, fingerprint, by, whole_seconds(now))
    }

    fn delete_node(&self, node: &str) -> Result<NodeRecord, StoreError> {
        nodes::delete(self, node)
    }

    fn expire_pending(
        &self,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Vec<NodeRecord>, StoreError> {
        nodes::expire_pending(self, whole_seconds(now), ttl)
    }

    fn set_node_state(
        &self,
        node: &str,
        state: NodeState,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<NodeRecord, StoreError> {
        nodes::set_state(self, node, state, by, whole_seconds(now))
    }

    fn node(&self, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        nodes::get(self, node)
    }

    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        nodes::all(self)
    }

    fn record_fleet_cert(
        &self,
        node: &str,
        serial: &str,
        key_fingerprint: &str,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (not_after, now) = (whole_seconds(not_after), whole_seconds(now));
        nodes::record_fleet_cert(self, node, serial, key_fingerprint, not_after, now)
    }

    fn record_issued(&self, cert: IssuedRecord) -> Result<(), StoreError> {
        issued::record(self, cert)
    }

    fn record_issued_audited(
        &self,
        cert: IssuedRecord,
        audit: NewAuditEntry,
    ) -> Result<u64, StoreError> {
        issued::record_audited(self, cert, &audit)
    }

    fn issued_for_node(&self, node: &str) -> Result<Vec<IssuedRecord>, StoreError> {
        issued::for_node(self, node)
    }

    fn record_report(
        &self,
        node: &str,
        report: calseg_api::report::Report,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        nodes::record_report(self, node, report, whole_seconds(now))
    }

    fn touch(&self, node: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        nodes::touch(self, node, whole_seconds(now))
    }

    fn append_audit(&self, entry: NewAuditEntry) -> Result<u64, StoreError> {
        audit::append(self, entry)
    }

    fn audit(&self, since_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        audit::since(self, since_seq, limit)
    }

    fn acquire_lease(
        &self,
        node: &str,
        units: &[String],
        now: OffsetDateTime,
        ttl: Duration,
        budget: &LeaseBudget,
    ) -> Result<LeaseRecord, StoreError> {
        leases::acquire(self, node, units, whole_seconds(now), ttl, budget)
    }

    fn release_lease(&self, id: &str, node: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        leases::release(self, id, node, whole_seconds(now))
    }

    fn renew_lease(
        &self,
        id: &str,
        node: &str,
        now: OffsetDateTime,
        ttl: Duration,
        max_life: Duration,
    ) -> Result<LeaseRecord, StoreError> {
        leases::renew(self, id, node, whole_seconds(now), ttl, max_life)
    }

    fn live_leases(&self, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StoreError> {
        leases::live(self, whole_seconds(now))
    }

    fn record_policy(&self, hash_hex: &str, now: OffsetDateTime) -> Result<u64, StoreError> {
        policy::record(self, hash_hex, whole_seconds(now))
    }

    fn policy_revisions(&self, limit: usize) -> Result<Vec<PolicyRevision>, StoreError> {
        policy::latest(self, limit)
    }

    fn save_policy_text(&self, revision: u64, text: &str) -> Result<(), StoreError> {
        policy::save_text(self, revision, text)
    }

    fn policy_text(&self, revision: u64) -> Result<Option<String>, StoreError> {
        policy::text(self, revision)
    }

    fn save_rollout(&self, rollout: &RolloutRecord) -> Result<(), StoreError> {
        policy::save_rollout(self, rollout)
    }

    fn rollout(&self) -> Result<Option<RolloutRecord>, StoreError> {
        policy::rollout(self)
    }

    fn export_snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        snapshot::export(self)
    }

    fn import_snapshot(&self, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
        snapshot::import(self, snapshot)
    }
}
