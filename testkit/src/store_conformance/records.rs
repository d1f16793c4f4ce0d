//! The audit log, policy revisions, policy texts, the rollout record and the CA rotation.

use time::Duration;

use super::t0;
use calseg_api::rollout::RolloutState;
use calseg_server::store::{
    AuditAction, AuditOutcome, CaRotationRecord, NewAuditEntry, RolloutRecord, Store,
};

/// An audit entry by `admin` at [`t0`] about `subject`.
pub fn entry(action: AuditAction, subject: &str) -> NewAuditEntry {
    NewAuditEntry {
        at: t0(),
        actor: "admin".into(),
        action,
        subject: subject.into(),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

/// A running rollout from revision 1 to 2, its first wave open.
pub fn rollout_record() -> RolloutRecord {
    RolloutRecord {
        from_revision: 1,
        to_revision: 2,
        state: RolloutState::Running,
        opened_waves: 1,
        wave_opened_at: vec![10],
        wave_healthy_at: None,
        created_at: 10,
        waves: vec![vec!["a".into()], vec!["b".into(), "c".into()]],
    }
}

pub fn audit_is_append_only_ordered_and_paged(store: &dyn Store) {
    assert!(store.audit(0, 10).unwrap().is_empty());
    let seqs: Vec<u64> = (0..5)
        .map(|i| {
            store
                .append_audit(entry(AuditAction::Issue, &format!("s{i}")))
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let page = store.audit(0, 2).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let rest = store.audit(page[1].seq, 100).unwrap();
    assert_eq!(
        rest.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(),
        ["s2", "s3", "s4"]
    );
    assert!(store.audit(0, 0).unwrap().is_empty(), "a limit of 0 is 0");
    assert!(store.audit(u64::MAX, 10).unwrap().is_empty());
}

pub fn the_same_hash_keeps_its_number_and_a_new_one_gets_the_next(store: &dyn Store) {
    assert!(store.policy_revisions(10).unwrap().is_empty());
    let at = |h: i64| t0() + Duration::hours(h);
    assert_eq!(store.record_policy("aa", at(0)).unwrap(), 1);
    assert_eq!(store.record_policy("aa", at(1)).unwrap(), 1);
    assert_eq!(store.record_policy("bb", at(2)).unwrap(), 2);
    // Going back to an earlier policy is a new revision: numbers only grow.
    assert_eq!(store.record_policy("aa", at(3)).unwrap(), 3);
    let history = store.policy_revisions(2).unwrap();
    let seen: Vec<_> = history
        .iter()
        .map(|r| (r.revision, r.hash.as_str(), r.first_seen))
        .collect();
    let ts = |h: i64| at(h).unix_timestamp();
    assert_eq!(seen, [(3, "aa", ts(3)), (2, "bb", ts(2))]);
    assert!(store.policy_revisions(0).unwrap().is_empty());
    assert_eq!(store.policy_revisions(10).unwrap().len(), 3);
}

pub fn policy_texts_and_the_rollout_are_kept_and_replaced(store: &dyn Store) {
    assert_eq!(store.rollout().unwrap(), None);
    assert_eq!(store.policy_text(1).unwrap(), None);
    store.save_policy_text(1, "one").unwrap();
    store.save_policy_text(2, "two\n\"quoted\"").unwrap();
    store.save_policy_text(1, "one again").unwrap();
    assert_eq!(store.policy_text(1).unwrap().as_deref(), Some("one again"));
    assert_eq!(
        store.policy_text(2).unwrap().as_deref(),
        Some("two\n\"quoted\"")
    );
    let mut record = rollout_record();
    store.save_rollout(&record).unwrap();
    assert_eq!(store.rollout().unwrap(), Some(record.clone()));
    record.opened_waves = 2;
    record.wave_healthy_at = Some(20);
    store.save_rollout(&record).unwrap();
    assert_eq!(store.rollout().unwrap(), Some(record));
}

/// A rotation of the etcd client CA whose re-issuing waves run.
pub fn ca_rotation_record() -> CaRotationRecord {
    CaRotationRecord {
        ca: "etcd-client".into(),
        old_fingerprint: "sha256:old".into(),
        new_fingerprint: "sha256:new".into(),
        phase: calseg_api::ca::RotationPhase::Reissuing,
        begun_at: 5,
        begun_by: "admin:ops".into(),
        probes: vec![calseg_api::ca::EndpointTrust {
            endpoint: "https://127.0.0.1:2379".into(),
            trusted: true,
            detail: "etcd answered (permission denied)".into(),
            checked_at: 6,
        }],
        waves: Some(rollout_record()),
        ended_at: None,
    }
}

pub fn the_ca_rotation_is_kept_and_replaced(store: &dyn Store) {
    assert_eq!(store.ca_rotation().unwrap(), None);
    let mut record = ca_rotation_record();
    store.save_ca_rotation(&record).unwrap();
    assert_eq!(store.ca_rotation().unwrap(), Some(record.clone()));
    record.phase = calseg_api::ca::RotationPhase::Finished;
    record.ended_at = Some(9);
    store.save_ca_rotation(&record).unwrap();
    assert_eq!(store.ca_rotation().unwrap(), Some(record));
    // The rollout record is another key.
    assert_eq!(store.rollout().unwrap(), None);
}
