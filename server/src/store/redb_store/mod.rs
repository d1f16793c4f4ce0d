//! [`RedbStore`]: the embedded store, one redb file (by default under `/var/lib/calseg/`).
//!
//! Every [`Store`] method is one redb transaction; writes commit with redb's default immediate
//! durability (fsync before `commit` returns), so whatever a method reported as done survives a
//! crash or power loss. redb allows one writer at a time, which serializes concurrent
//! redemptions of the same token. The file is locked while open: a second open, from another
//! process or this one, fails with [`StoreError::AlreadyOpen`].
//!
//! # Layout
//! - `tables`: table definitions and the JSON record helpers.
//! - `tokens`, `nodes`, `issued`, `audit`, `leases`, `policy`: the operations, one concern each.
//! - `snapshot`: export and import of every record, for `migrate-store`.

mod audit;
mod issued;
mod leases;
mod nodes;
mod policy;
mod snapshot;
mod tables;
mod tokens;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::backends::FileBackend;
use redb::{Builder, Database, DatabaseError, ReadTransaction, ReadableDatabase, WriteTransaction};
use ring::rand::SystemRandom;
use time::{Duration, OffsetDateTime};

use super::records::whole_seconds;
use super::{
    AuditEntry, IssuedRecord, LeaseBudget, LeaseRecord, NewAuditEntry, NewToken, NodeRecord,
    NodeState, PendingAsk, PolicyRevision, RolloutRecord, Store, StoreError, StoreSnapshot,
    TokenInfo, TokenScope, TokenUse,
};

/// The embedded, crash-safe, single-file [`Store`].
pub struct RedbStore {
    db: Database,
    /// Kept for error messages.
    path: PathBuf,
    rng: SystemRandom,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the state file, creating it (mode 0600 from the first byte) and its tables if
    /// needed. The parent directory must exist. Blocking.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(open_err)?;
        if created {
            // Make the new directory entry durable too, not only the file's contents.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            File::open(dir.unwrap_or(Path::new(".")))
                .and_then(|d| d.sync_all())
                .map_err(open_err)?;
        }
        let db = match Builder::new().create_with_backend(FileBackend::new(file)?) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::AlreadyOpen {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let store = Self {
            db,
            path: path.to_owned(),
            rng: SystemRandom::new(),
        };
        store.write(tables::init)?;
        Ok(store)
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction; commits only if it succeeds (dropping aborts).
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on a consistent snapshot.
    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db.begin_read()?)
    }
}

impl Store for RedbStore {
    fn reads_without_blocking(&self) -> bool {
        true
    }

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
        nodes::record_fleet_cert(
            self,
            node,
            serial,
            key_fingerprint,
            whole_seconds(not_after),
            whole_seconds(now),
        )
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
