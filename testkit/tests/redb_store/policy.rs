//! Policy revisions, texts and the rollout survive closing and reopening the file.

use super::t0;
use calseg_server::store::{RedbStore, Store};

#[test]
fn revisions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.record_policy("aa", t0()).unwrap(), 1);
        assert_eq!(store.record_policy("bb", t0()).unwrap(), 2);
    }
    let store = RedbStore::open(&path).unwrap();
    // A restart with the policy last run does not bump it; a changed one continues the count.
    assert_eq!(store.record_policy("bb", t0()).unwrap(), 2);
    assert_eq!(store.record_policy("cc", t0()).unwrap(), 3);
    assert_eq!(store.policy_revisions(10).unwrap().len(), 3);
}

#[test]
fn policy_texts_and_the_rollout_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let record = calseg_testkit::store_conformance::rollout_record();
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.rollout().unwrap(), None);
        assert_eq!(store.policy_text(1).unwrap(), None);
        store.save_policy_text(1, "one").unwrap();
        store.save_policy_text(2, "two").unwrap();
        store.save_rollout(&record).unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.policy_text(1).unwrap().as_deref(), Some("one"));
    assert_eq!(store.policy_text(2).unwrap().as_deref(), Some("two"));
    assert_eq!(store.rollout().unwrap(), Some(record));
}
