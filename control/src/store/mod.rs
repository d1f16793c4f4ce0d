//! The server's state: nodes, enrollment tokens, issued certificates and the audit log.
//!
//! [`Store`] is deliberately narrow: each method is one atomic operation that keeps the store's
//! invariants (a token is never redeemed more often than its scope allows, serials never repeat,
//! the audit log only grows, node states change only along checked transitions), rather than raw
//! get/put. Each operation is written once (module `ops`) over a small transactional key-value
//! interface (module `kv`) that both backends implement: redb's write transaction, and
//! optimistic etcd transactions for several replicas (HA).
//!
//! The store is **synchronous** and may block on disk I/O and on other writers. From async code
//! call it through [`tokio::task::spawn_blocking`] with an `Arc<dyn Store>`, never directly on a
//! runtime thread:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use calseg_control::store::{RedbStore, Store};
//! # async fn example() -> anyhow::Result<()> {
//! let store: Arc<dyn Store> = Arc::new(RedbStore::open("/var/lib/calseg/state.redb".as_ref())?);
//! let s = Arc::clone(&store);
//! let nodes = tokio::task::spawn_blocking(move || s.nodes()).await??;
//! # Ok(()) }
//! ```
//!
//! Time is always a parameter (`now`), never read from a clock here, and is kept to whole
//! seconds.
//!
//! # Layout
//! - `codec`: the JSON form of stored values, shared by both stores.
//! - `errors`: [`StoreError`] and its stable [`StoreError::kind`] labels.
//! - `records`: the stored records: [`NodeRecord`], [`IssuedRecord`], [`AuditEntry`].
//! - `tokens`: the token format, hashing and the pure redemption checks.
//! - `transitions`: the node state machine, as pure functions.
//! - `leases`: restart leases ([`LeaseRecord`], [`LeaseBudget`]) and the pure budget check.
//! - policy revisions: [`Store::record_policy`] numbers each distinct policy the server runs;
//!   their texts and the latest rollout in waves ([`RolloutRecord`]) let a restart resume it.
//! - `snapshot`: [`StoreSnapshot`], every record of a store, for migrating between backends.
//! - `kv`: the key-value interface the operations run on: logical tables, keys, transactions.
//! - `ops`: every [`Store`] operation, once, for any backend of `kv`; time is truncated there.
//! - `redb_store`: [`RedbStore`], the embedded single-file backend (the default): `kv` on redb
//!   tables.
//! - `etcd_store`: [`EtcdStore`], `kv` on etcd transactions, shared by replicas.
//!
//! The behaviour every backend must show is checked by one suite in `calseg-testkit`
//! (`store_conformance`), run on both backends; no test code is compiled into this crate.
//!
//! [`Store`]: crate::store::Store
//! [`StoreError`]: crate::store::StoreError
//! [`StoreError::kind`]: crate::store::StoreError::kind
//! [`NodeRecord`]: crate::store::NodeRecord
//! [`IssuedRecord`]: crate::store::IssuedRecord
//! [`AuditEntry`]: crate::store::AuditEntry
//! [`RedbStore`]: crate::store::RedbStore
//! [`RolloutRecord`]: crate::store::RolloutRecord
//! [`LeaseRecord`]: crate::store::LeaseRecord
//! [`LeaseBudget`]: crate::store::LeaseBudget
//! [`StoreSnapshot`]: crate::store::StoreSnapshot
//! [`EtcdStore`]: crate::store::EtcdStore

mod codec;
mod errors;
mod etcd_store;
mod kv;
mod leases;
mod ops;
mod records;
mod redb_store;
mod snapshot;
mod tokens;
mod transitions;

#[cfg(test)]
mod tests;

pub use calseg_api::rollout::PolicyRevision;
pub use errors::StoreError;
pub use etcd_store::EtcdStore;
pub use leases::{GroupBudget, LeaseBudget, LeaseRecord};
pub use records::{
    AuditAction, AuditEntry, AuditOutcome, CaRotationRecord, FleetCert, FleetSerial, IssuedRecord,
    NewAuditEntry, NodeRecord, NodeStanding, NodeState, PendingAsk, PendingKey, RolloutRecord,
};
pub use redb_store::RedbStore;
pub use snapshot::{PolicyText, SNAPSHOT_FORMAT, SnapshotToken, StoreSnapshot};
pub use tokens::{NewToken, TokenInfo, TokenScope, TokenUse};

use time::{Duration, OffsetDateTime};

/// The server's state store. Object-safe: the server holds an `Arc<dyn Store>`.
///
/// Every method is atomic (one transaction) and blocking: see the module docs.
pub trait Store: Send + Sync {
    /// Creates a token valid for `ttl` from `now`. The returned [`NewToken::token`] is the only
    /// copy of the secret; the store keeps a SHA-256 hash of it.
    fn create_token(
        &self,
        scope: TokenScope,
        ttl: Duration,
        now: OffsetDateTime,
        created_by: &str,
    ) -> Result<NewToken, StoreError>;

    /// Atomically: finds the token by id, compares the hash in constant time, checks expiry and
    /// scope (exact node, or glob match with uses left and this node not among them), records
    /// the use and creates or approves the node. Errors: `MalformedToken`, `UnknownToken`,
    /// `BadSecret`, `Expired`, `NodeNotAllowed`, `AlreadyUsedByNode`, `Exhausted` (also for the
    /// reuse of a node-scoped token by the same node), `NodeKnown` (a match token naming a node
    /// the server already knows). A refused redemption changes nothing.
    fn redeem_token(
        &self,
        token: &str,
        node: &str,
        now: OffsetDateTime,
    ) -> Result<TokenUse, StoreError>;

    /// All tokens, expired ones included, by id. Never the hash.
    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Deletes a token; false if there was none.
    fn delete_token(&self, id: &str) -> Result<bool, StoreError>;

    /// The approval flow: a node asks to enroll with a CSR and no token. Creates it as Pending
    /// (`TooManyPending` when `ask.max_pending` nodes are pending already), or, for the same
    /// key, updates `last_seen`. Refuses another key for a pending node
    /// (`PendingKeyMismatch`: the pending request is never replaced) and (`NodeRefused`) a
    /// node that is approved, denied or revoked. A refusal changes nothing.
    fn upsert_pending_node(
        &self,
        node: &str,
        ask: &PendingAsk,
        now: OffsetDateTime,
    ) -> Result<NodeRecord, StoreError>;

    /// An admin approves a pending (or denied) node for the one key whose fingerprint is
    /// `fingerprint`; `FingerprintMismatch` (nothing changed) when that is not the key waiting.
    fn approve_key(
        &self,
        node: &str,
        fingerprint: &str,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<NodeRecord, StoreError>;

    /// Deletes a pending or denied node (it holds no certificate); returns what it was.
    /// `NotDeletable` for any other state, `UnknownNode` when there is none.
    fn delete_node(&self, node: &str) -> Result<NodeRecord, StoreError>;

    /// Deletes the pending nodes first seen (`enrolled_at`) at or before `now - ttl`; returns
    /// them. Called periodically; each dropped one is audited by the caller.
    fn expire_pending(
        &self,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Vec<NodeRecord>, StoreError>;

    /// Approves, denies or revokes a node along the checked transitions of the state machine
    /// (module `transitions`): Pending -> Approved | Denied, Denied -> Approved,
    /// Approved -> Revoked; Revoked is final except for a node-scoped token. Setting the current
    /// state again is a no-op. `by` is recorded (`admin:<who>`, `auto:<glob>`).
    fn set_node_state(
        &self,
        node: &str,
        state: NodeState,
        by: &str,
        now: OffsetDateTime,
    ) -> Result<NodeRecord, StoreError>;

    fn node(&self, node: &str) -> Result<Option<NodeRecord>, StoreError>;

    /// What every call of `node` is checked against ([`NodeStanding`]): its record, less what
    /// that check does not read.
    fn node_standing(&self, node: &str) -> Result<Option<NodeStanding>, StoreError>;

    /// True when a read never waits for the network, another writer or more than memory-mapped
    /// pages (the embedded store: MVCC reads in microseconds), so async code may read inline
    /// instead of hopping to the blocking pool. False by default (etcd reads are network calls).
    fn reads_without_blocking(&self) -> bool {
        false
    }

    /// All nodes, by name.
    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Records an approved node's new fleet certificate and drops its pending CSR. Record the
    /// certificate itself with [`Store::record_issued`] (component `fleet`) as well.
    /// `key_fingerprint`: `sha256:` of its public key.
    fn record_fleet_cert(
        &self,
        node: &str,
        serial: &str,
        key_fingerprint: &str,
        issuer: &str,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Records a signed certificate of a known node. `DuplicateSerial` if the serial exists.
    fn record_issued(&self, cert: IssuedRecord) -> Result<(), StoreError>;

    /// Like [`Store::record_issued`], and appends `audit` in the same transaction: a
    /// certificate is never recorded without its audit entry (and one commit, not two). Returns
    /// the entry's sequence number.
    fn record_issued_audited(
        &self,
        cert: IssuedRecord,
        audit: NewAuditEntry,
    ) -> Result<u64, StoreError>;

    /// [`Store::record_issued_audited`] for several certificates in one transaction and one
    /// commit (group commit). Each item gets its own answer: one refused (bad serial, unknown
    /// node, duplicate serial) writes nothing and leaves the others be; `Err` for the whole
    /// batch means nothing was written.
    fn record_issued_batch(
        &self,
        items: &[(IssuedRecord, NewAuditEntry)],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError>;

    /// A node's certificates, by serial.
    fn issued_for_node(&self, node: &str) -> Result<Vec<IssuedRecord>, StoreError>;

    /// Stores the agent's latest report as sent and updates `last_seen`.
    fn record_report(
        &self,
        node: &str,
        report: calseg_api::report::Report,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Updates a node's `last_seen`.
    fn touch(&self, node: &str, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Appends to the audit log; returns the entry's sequence number (1, 2, 3, ...). There is no
    /// way to change or delete an entry.
    fn append_audit(&self, entry: NewAuditEntry) -> Result<u64, StoreError>;

    /// Up to `limit` entries with `seq > since_seq`, oldest first. Pass the last `seq` seen to
    /// page on; 0 starts at the beginning.
    fn audit(&self, since_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Atomically (one write transaction): deletes expired leases; returns the node's own live
    /// lease unchanged if it has one (so a retried request is safe); otherwise counts the live
    /// leases fleet-wide and in `budget.group`, refuses with `BudgetFull` when either limit is
    /// reached, and records a new lease for `units` valid `ttl` from `now`. Concurrent calls
    /// never leave more live leases than the budget they were given allows.
    fn acquire_lease(
        &self,
        node: &str,
        units: &[String],
        now: OffsetDateTime,
        ttl: Duration,
        budget: &LeaseBudget,
    ) -> Result<LeaseRecord, StoreError>;

    /// Ends a lease early. `UnknownLease` if there is no such lease (released or expired and
    /// deleted), `LeaseNotHeld` if `node` is not its holder. An expired lease of `node` is
    /// simply deleted.
    fn release_lease(&self, id: &str, node: &str, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Extends a live lease of `node` to `now + ttl`, but never past `max_life` from its grant.
    /// `UnknownLease` if it is gone or expired (ask for a new one: its slot may have been
    /// granted), `LeaseNotHeld` for another node's, `LeaseLifeExceeded` once it already ends at
    /// its cap (it is left to end then).
    fn renew_lease(
        &self,
        id: &str,
        node: &str,
        now: OffsetDateTime,
        ttl: Duration,
        max_life: Duration,
    ) -> Result<LeaseRecord, StoreError>;

    /// The leases live at `now`, by id.
    fn live_leases(&self, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StoreError>;

    /// Atomically: the revision number of the policy whose text hashes to `hash_hex`. When the
    /// latest recorded policy has this hash, its number (a restart with the same policy keeps
    /// it); otherwise the next number (1 for the first), recorded with `now` as first seen.
    /// Going back to an older policy is a new revision: numbers only grow.
    fn record_policy(&self, hash_hex: &str, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Up to `limit` recorded policy revisions, newest first.
    fn policy_revisions(&self, limit: usize) -> Result<Vec<PolicyRevision>, StoreError>;

    /// Keeps the text of policy `revision` (replacing any kept before), so a rollout between
    /// two revisions survives a restart.
    fn save_policy_text(&self, revision: u64, text: &str) -> Result<(), StoreError>;

    /// The text kept for policy `revision`, if any.
    fn policy_text(&self, revision: u64) -> Result<Option<String>, StoreError>;

    /// Replaces the latest rollout in waves.
    fn save_rollout(&self, rollout: &RolloutRecord) -> Result<(), StoreError>;

    /// The latest rollout in waves, if any.
    fn rollout(&self) -> Result<Option<RolloutRecord>, StoreError>;

    /// Replaces the latest rotation of the etcd client CA.
    fn save_ca_rotation(&self, rotation: &CaRotationRecord) -> Result<(), StoreError>;

    /// The latest rotation of the etcd client CA, if any.
    fn ca_rotation(&self) -> Result<Option<CaRotationRecord>, StoreError>;

    /// Every record the store holds, read from one consistent view, each kind in key order.
    /// For `migrate-store`: tokens come with their hashes and uses (never a secret).
    fn export_snapshot(&self) -> Result<StoreSnapshot, StoreError>;

    /// Writes every record of `snapshot` into this store, which must be empty: otherwise
    /// `NotEmpty` and nothing is written. The snapshot is checked first
    /// ([`StoreSnapshot::check`]). Counters continue after the imported records: the next audit
    /// entry and policy revision get the numbers after the last imported ones.
    fn import_snapshot(&self, snapshot: &StoreSnapshot) -> Result<(), StoreError>;
}
