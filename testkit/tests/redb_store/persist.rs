//! Durability across reopen, and the file lock.

use time::Duration;

use super::{fresh, match_token, node_token, t0};
use calseg_server::store::{AuditAction, NodeState, RedbStore, Store, StoreError};
use calseg_testkit::store_conformance::entry;

#[test]
fn everything_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let (tok, spare) = {
        let store = RedbStore::open(&path).unwrap();
        let tok = match_token(&store, "w-*", 3);
        let spare = node_token(&store, "other");
        store.redeem_token(&tok.token, "w-1", t0()).unwrap();
        store
            .upsert_pending_node(
                "w-2",
                &calseg_testkit::store_conformance::ask("CSR", "sha256:w-2"),
                t0(),
            )
            .unwrap();
        store
            .set_node_state("w-2", NodeState::Denied, "admin:ops", t0())
            .unwrap();
        store
            .append_audit(entry(AuditAction::Enroll, "w-1"))
            .unwrap();
        (tok, spare)
    };
    let store = RedbStore::open(&path).unwrap();
    let nodes = store.nodes().unwrap();
    let states: Vec<_> = nodes.iter().map(|n| (n.name.as_str(), n.state)).collect();
    assert_eq!(
        states,
        [("w-1", NodeState::Approved), ("w-2", NodeState::Denied)]
    );
    let err = store.redeem_token(&tok.token, "w-1", t0()).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyUsedByNode { .. }), "{err}");
    store
        .redeem_token(&spare.token, "other", t0() + Duration::minutes(1))
        .unwrap();
    assert_eq!(
        store
            .append_audit(entry(AuditAction::Enroll, "other"))
            .unwrap(),
        2
    );
    assert_eq!(store.audit(0, 10).unwrap()[0].action, AuditAction::Enroll);
}

#[test]
fn a_second_open_of_the_same_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("already open by another calseg-server"),
        "{err}"
    );
    drop(first);
    RedbStore::open(&path).unwrap();
}

#[test]
fn the_file_is_private_and_missing_directories_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _store) = fresh();
    let mode = std::fs::metadata(dir.path().join("state.redb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let err = RedbStore::open(&dir.path().join("missing/state.redb")).unwrap_err();
    assert_eq!(err.kind(), "open_failed", "{err}");
}
