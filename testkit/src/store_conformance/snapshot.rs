//! Export and import: a copy holds every record of the original, record by record, goes on
//! where the original stopped, and an import never writes into a store that holds anything.

use time::Duration;

use super::leases::{TTL, fleet, units};
use super::nodes::cert;
use super::records::{ca_rotation_record, entry, rollout_record};
use super::{match_token, node_token, t0};
use calseg_server::store::{
    AuditAction, AuditEntry, AuditOutcome, NewToken, NodeRecord, NodeState, SNAPSHOT_FORMAT, Store,
    StoreSnapshot,
};

/// Fills `store` with every kind of record, in every state that matters to a copy: a token
/// partly used, an unused one, nodes in each state with reports and CSRs, certificates, audit
/// entries, a live and an expired lease, policy revisions and texts, a rollout. Returns the
/// partly used token (uses 2 of 3), whose secret only the caller knows.
pub fn populate(store: &dyn Store) -> NewToken {
    let tok = match_token(store, "w-*", 3);
    store.redeem_token(&tok.token, "w-1", t0()).unwrap();
    store.redeem_token(&tok.token, "w-2", t0()).unwrap();
    node_token(store, "spare");
    store
        .upsert_pending_node(
            "p-1",
            &crate::store_conformance::ask("CSR-1", "sha256:p-1"),
            t0(),
        )
        .unwrap();
    store
        .upsert_pending_node(
            "d-1",
            &crate::store_conformance::ask("CSR-2", "sha256:d-1"),
            t0(),
        )
        .unwrap();
    store
        .set_node_state("d-1", NodeState::Denied, "admin:ops", t0())
        .unwrap();
    store
        .set_node_state("w-2", NodeState::Revoked, "admin:ops", t0())
        .unwrap();
    store.record_issued(cert("0a", "w-1", "fleet")).unwrap();
    store
        .record_issued(cert("0b", "w-1", "calico-node"))
        .unwrap();
    store
        .record_issued(cert("1c", "w-2", "calico-node"))
        .unwrap();
    let later = t0() + Duration::minutes(5);
    store
        .record_fleet_cert(
            "w-1",
            "0a",
            "sha256:01",
            "sha256:ca",
            later + Duration::days(30),
            later,
        )
        .unwrap();
    let report = calseg_api::report::Report {
        revision: "2".into(),
        identities: Vec::new(),
        units: Vec::new(),
        errors: vec!["none".into()],
    };
    store.record_report("w-1", report, later).unwrap();
    for subject in ["w-1", "w-2", "d-1"] {
        store
            .append_audit(entry(AuditAction::Enroll, subject))
            .unwrap();
    }
    // The expired lease is granted (at an earlier "now") after the live one, so that nothing
    // has deleted it yet.
    store
        .acquire_lease("w-1", &units(), t0(), TTL, &fleet(5))
        .unwrap();
    let early = t0() - Duration::hours(1);
    store
        .acquire_lease("w-2", &units(), early, TTL, &fleet(5))
        .unwrap();
    store.record_policy("aa", t0()).unwrap();
    store.record_policy("bb", later).unwrap();
    store.save_policy_text(1, "one").unwrap();
    store.save_policy_text(2, "two").unwrap();
    store.save_rollout(&rollout_record()).unwrap();
    store.save_ca_rotation(&ca_rotation_record()).unwrap();
    tok
}

/// Copies `source` into the empty `target` and checks that the copy exports the same
/// snapshot. Returns it.
pub fn copy(source: &dyn Store, target: &dyn Store) -> StoreSnapshot {
    let snapshot = source.export_snapshot().unwrap();
    snapshot.check().unwrap();
    target.import_snapshot(&snapshot).unwrap();
    let copied = target.export_snapshot().unwrap();
    assert_eq!(copied, snapshot, "the copy differs from the original");
    snapshot
}

/// A populated store copied into `target` (empty): equal snapshots, and the copy goes on where
/// the original stopped: counters, token uses, serials and leases.
pub fn export_then_import_gives_an_equal_store(source: &dyn Store, target: &dyn Store) {
    let tok = populate(source);
    let snapshot = copy(source, target);
    let counts = [
        snapshot.tokens.len(),
        snapshot.nodes.len(),
        snapshot.issued.len(),
        snapshot.audit.len(),
        snapshot.leases.len(),
        snapshot.policy_revisions.len(),
        snapshot.policy_texts.len(),
    ];
    assert_eq!(counts, [2, 4, 3, 3, 2, 2, 2]);
    assert!(snapshot.rollout.is_some());
    assert_eq!(snapshot.ca_rotation, Some(ca_rotation_record()));
    assert_eq!(
        snapshot.tokens[0].uses.len() + snapshot.tokens[1].uses.len(),
        2
    );

    let next = target.append_audit(entry(AuditAction::Issue, "x")).unwrap();
    assert_eq!(next, 4, "audit numbers go on");
    assert_eq!(target.record_policy("bb", t0()).unwrap(), 2);
    assert_eq!(target.record_policy("cc", t0()).unwrap(), 3);
    target.redeem_token(&tok.token, "w-3", t0()).unwrap();
    let err = target.redeem_token(&tok.token, "w-4", t0()).unwrap_err();
    assert_eq!(err.kind(), "token_exhausted", "uses were copied: {err}");
    let err = target.record_issued(cert("0B", "w-2", "x")).unwrap_err();
    assert_eq!(err.kind(), "duplicate_serial", "{err}");
    let serials: Vec<_> = target.issued_for_node("w-1").unwrap();
    assert_eq!(serials.len(), 2, "the per-node index was copied");
    let err = target
        .acquire_lease("w-3", &units(), t0(), TTL, &fleet(1))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        "restart_budget_full",
        "the live lease was copied"
    );
    assert_eq!(
        target
            .acquire_lease("w-1", &units(), t0(), TTL, &fleet(1))
            .unwrap(),
        snapshot
            .leases
            .iter()
            .find(|l| l.node == "w-1")
            .unwrap()
            .clone()
    );
}

pub fn an_empty_store_exports_an_empty_snapshot(store: &dyn Store) {
    let snapshot = store.export_snapshot().unwrap();
    assert!(snapshot.is_empty(), "{snapshot:?}");
    snapshot.check().unwrap();
}

/// An import into a store that holds anything is refused and writes nothing.
pub fn import_refuses_a_store_that_is_not_empty(store: &dyn Store) {
    store.record_policy("aa", t0()).unwrap();
    let before = store.export_snapshot().unwrap();
    let err = store.import_snapshot(&small_snapshot()).unwrap_err();
    assert_eq!(err.kind(), "store_not_empty", "{err}");
    assert!(err.to_string().contains("empty store"), "{err}");
    assert_eq!(store.export_snapshot().unwrap(), before);
}

/// A snapshot with a key twice, a gap in the audit numbers, another format or a certificate
/// of a node it lacks is refused before anything is written.
pub fn import_refuses_an_inconsistent_snapshot(store: &dyn Store) {
    let source = small_snapshot();
    let mut twice = source.clone();
    twice.nodes.push(twice.nodes[0].clone());
    let mut gap = source.clone();
    gap.audit.remove(0);
    let mut format = source.clone();
    format.format += 1;
    let mut orphan = source;
    orphan.nodes.retain(|n| n.name != "w-1");
    for bad in [twice, gap, format, orphan] {
        let err = store.import_snapshot(&bad).unwrap_err();
        assert_eq!(err.kind(), "invalid_snapshot", "{err}");
    }
    assert!(
        store.export_snapshot().unwrap().is_empty(),
        "nothing written"
    );
}

/// Two nodes, a certificate and three audit entries.
fn small_snapshot() -> StoreSnapshot {
    let nodes = ["w-1", "w-2"].map(|n| NodeRecord {
        approved_by: Some("admin:ops".into()),
        state_changed_by: "admin:ops".into(),
        ..NodeRecord::new(n, NodeState::Approved, t0())
    });
    let audit = (1..=3)
        .map(|seq| AuditEntry {
            seq,
            at: t0(),
            actor: "admin".into(),
            action: AuditAction::Enroll,
            subject: format!("s{seq}"),
            outcome: AuditOutcome::Ok,
            detail: String::new(),
        })
        .collect();
    StoreSnapshot {
        format: SNAPSHOT_FORMAT,
        nodes: nodes.to_vec(),
        issued: vec![cert("0a", "w-1", "fleet")],
        audit,
        ..StoreSnapshot::default()
    }
}
