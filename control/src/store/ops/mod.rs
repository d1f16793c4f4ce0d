//! The [`Store`] operations, written once over the key-value interface ([`Kv`]) that both
//! backends implement: every backend that is a [`Kv`] is a [`Store`]. Time is truncated to
//! whole seconds here, once, before any operation sees it.
//!
//! # Layout
//! - `tokens`, `nodes`, `issued` (with the audit log), `leases`, `policy`: the operations, one
//!   concern each.
//! - `snapshot`: export and import for `migrate-store`.

mod issued;
mod leases;
mod nodes;
mod policy;
mod snapshot;
mod tokens;

use time::{Duration, OffsetDateTime};

use super::kv::Kv;
use super::records::whole_seconds;
use super::{
    AuditEntry, CaRotationRecord, IssuedRecord, LeaseBudget, LeaseRecord, NewAuditEntry, NewToken,
    NodeRecord, NodeStanding, NodeState, PendingAsk, PolicyRevision, RolloutRecord, Store,
    StoreError, StoreSnapshot, TokenInfo, TokenScope, TokenUse,
};

pub(super) use nodes::PendingEntry;

impl<K: Kv> Store for K {
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

    fn node_standing(&self, node: &str) -> Result<Option<NodeStanding>, StoreError> {
        nodes::standing(self, node)
    }

    fn reads_without_blocking(&self) -> bool {
        Kv::reads_without_blocking(self)
    }

    fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        nodes::all(self)
    }

    fn record_fleet_cert(
        &self,
        node: &str,
        serial: &str,
        key_fingerprint: &str,
        issuer: &str,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (not_after, now) = (whole_seconds(not_after), whole_seconds(now));
        nodes::record_fleet_cert(self, node, serial, key_fingerprint, issuer, not_after, now)
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

    fn record_issued_batch(
        &self,
        items: &[(IssuedRecord, NewAuditEntry)],
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        issued::record_audited_batch(self, items)
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
        issued::append(self, entry)
    }

    fn audit(&self, since_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        issued::audit_since(self, since_seq, limit)
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

    fn save_ca_rotation(&self, rotation: &CaRotationRecord) -> Result<(), StoreError> {
        policy::save_ca_rotation(self, rotation)
    }

    fn ca_rotation(&self) -> Result<Option<CaRotationRecord>, StoreError> {
        policy::ca_rotation(self)
    }

    fn export_snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        snapshot::export(self)
    }

    fn import_snapshot(&self, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
        snapshot::import(self, snapshot)
    }
}
