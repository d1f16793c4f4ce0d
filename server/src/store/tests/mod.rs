//! Tests of the [`Store`] contract, run against [`RedbStore`] on a temporary file. They talk to
//! `&dyn Store` wherever they can, so a later backend can run the same cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod leases;
mod nodes;
mod persist;
mod policy;
mod tokens;

use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

use super::{NewToken, RedbStore, Store, TokenScope};

/// A fixed, whole-second "now".
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
}

/// A store on a new file in its own temporary directory (kept alive by the returned guard).
fn fresh() -> (TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("state.redb")).unwrap();
    (dir, store)
}

fn node_token(store: &dyn Store, node: &str) -> NewToken {
    let scope = TokenScope::Node(node.to_owned());
    store
        .create_token(scope, Duration::hours(1), t0(), "admin:test")
        .unwrap()
}

fn match_token(store: &dyn Store, glob: &str, uses_max: u32) -> NewToken {
    let scope = TokenScope::Match {
        glob: glob.to_owned(),
        uses_max,
    };
    store
        .create_token(scope, Duration::hours(1), t0(), "admin:test")
        .unwrap()
}
