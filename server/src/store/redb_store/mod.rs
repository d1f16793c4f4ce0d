//! [`RedbStore`]: the embedded store, one redb file (by default under `/var/lib/calseg/`).
//!
//! The key-value backend ([`Kv`]) on redb; the operations are the shared ones (`store::ops`).
//! Every [`Store`](crate::store::Store) method is one redb transaction (expiring pending nodes:
//! one per batch); writes commit with redb's default immediate durability (fsync before
//! `commit` returns), so whatever a method reported as done survives a crash or power loss. redb allows one writer at a time, which serializes concurrent
//! redemptions of the same token. The file is locked while open: a second open, from another
//! process or this one, fails with [`StoreError::AlreadyOpen`].
//!
//! # Layout
//! - `tables`: table definitions, created on open.
//! - `txn`: the [`Txn`] the shared operations run on.
//! - `snapshot`: every table read at once, and the import into an empty file.

mod snapshot;
mod tables;
mod txn;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::backends::FileBackend;
use redb::{Builder, Database, DatabaseError, ReadableDatabase};

use super::StoreError;
use super::kv::{Key, Kv, Space, Stored, Txn};

/// The embedded, crash-safe, single-file [`Store`](crate::store::Store).
pub struct RedbStore {
    db: Database,
    /// Kept for error messages.
    path: PathBuf,
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
        };
        let tx = store.db.begin_write()?;
        tables::init(&tx)?;
        tx.commit()?;
        Ok(store)
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Kv for RedbStore {
    /// On a consistent snapshot (MVCC: never waits for the writer).
    fn read<T>(
        &self,
        _what: &str,
        f: impl FnOnce(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut txn::Tx::Read(&self.db.begin_read()?))
    }

    /// In one write transaction, committed only if `f` succeeds (dropping aborts). `f` runs
    /// once: redb has one writer at a time, so there is no conflict to retry.
    fn write<T>(
        &self,
        _what: &str,
        mut f: impl FnMut(&mut dyn Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write()?;
        let out = f(&mut txn::Tx::Write(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    fn dump(&self) -> Result<Vec<(Space, Stored)>, StoreError> {
        snapshot::dump(&self.db.begin_read()?)
    }

    fn load_empty(&self, records: Vec<(Space, Key, Vec<u8>)>) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        snapshot::load_empty(&tx, &self.path, records)?;
        tx.commit()?;
        Ok(())
    }

    fn reads_without_blocking(&self) -> bool {
        true
    }
}
