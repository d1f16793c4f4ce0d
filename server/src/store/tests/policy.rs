//! Policy revisions: one number per distinct policy, stable across restarts.

use time::Duration;

use super::{fresh, t0};
use crate::store::{RedbStore, Store};

#[test]
fn the_same_hash_keeps_its_number_and_a_new_one_gets_the_next() {
    let (_dir, store) = fresh();
    assert!(store.policy_revisions(10).unwrap().is_empty());
    assert_eq!(store.record_policy("aa", t0()).unwrap(), 1);
    assert_eq!(
        store
            .record_policy("aa", t0() + Duration::hours(1))
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_policy("bb", t0() + Duration::hours(2))
            .unwrap(),
        2
    );
    // Going back to an earlier policy is a new revision: numbers only grow.
    assert_eq!(
        store
            .record_policy("aa", t0() + Duration::hours(3))
            .unwrap(),
        3
    );
    let history = store.policy_revisions(2).unwrap();
    let seen: Vec<_> = history
        .iter()
        .map(|r| (r.revision, r.hash.as_str(), r.first_seen))
        .collect();
    let at = |h: i64| (t0() + Duration::hours(h)).unix_timestamp();
    assert_eq!(seen, [(3, "aa", at(3)), (2, "bb", at(2))]);
}

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
    use crate::store::RolloutRecord;
    use calseg_api::rollout::RolloutState;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let record = RolloutRecord {
        from_revision: 1,
        to_revision: 2,
        state: RolloutState::Running,
        opened_waves: 1,
        wave_opened_at: vec![10],
        wave_healthy_at: None,
        created_at: 10,
        waves: vec![vec!["a".into()], vec!["b".into(), "c".into()]],
    };
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
