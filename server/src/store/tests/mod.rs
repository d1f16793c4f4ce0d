//! Tests of the [`Store`] contract on [`RedbStore`] on a temporary file: the shared
//! [`conformance`](crate::store::conformance) checks (which the end-to-end tests also run on
//! the etcd store), plus what only the file store has (reopening, the file lock, file bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod persist;
mod policy;
mod stored_report;
mod tokens;

use tempfile::TempDir;

use super::RedbStore;
pub(super) use super::conformance::{match_token, node_token, t0};

/// A store on a new file in its own temporary directory (kept alive by the returned guard).
fn fresh() -> (TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("state.redb")).unwrap();
    (dir, store)
}
