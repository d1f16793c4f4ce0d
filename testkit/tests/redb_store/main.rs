//! Tests of the [`Store`](calseg_server::store::Store) contract on [`RedbStore`] on a temporary
//! file: the shared [`store_conformance`](calseg_testkit::store_conformance) checks (which the
//! end-to-end tests also run on the etcd store), plus what only the file store has (reopening,
//! the file lock, file bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod layout;
mod persist;
mod policy;

use tempfile::TempDir;

use calseg_server::store::RedbStore;
use calseg_testkit::store_conformance::{match_token, node_token, t0};

/// A store on a new file in its own temporary directory (kept alive by the returned guard).
fn fresh() -> (TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("state.redb")).unwrap();
    (dir, store)
}
