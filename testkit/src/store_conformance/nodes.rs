//! Node state transitions, the approval flow, reports and issued certificates.

use time::Duration;

use super::{ask, node_token, t0};
use calseg_server::store::{AuditAction, IssuedRecord, NodeState, Store, StoreError};

pub(super) fn cert(serial: &str, node: &str, component: &str) -> IssuedRecord {
    IssuedRecord {
        serial: serial.to_owned(),
        cn: format!("{component}.{node}"),
        node: node.to_owned(),
        component: component.to_owned(),
        not_before: t0(),
        not_after: t0() + Duration::days(30),
        issued_at: t0(),
        issuer: None,
    }
}

pub fn approval_flow_pending_approve_fleet_cert(store: &dyn Store) {
    let rec = store
        .upsert_pending_node("worker-1", &ask("CSR-1", "sha256:k1"), t0())
        .unwrap();
    assert_eq!(
        (rec.state, rec.pending_csr.as_deref()),
        (NodeState::Pending, Some("CSR-1"))
    );
    // The agent asks again with the same key: first seen stays, last seen moves.
    let later = t0() + Duration::minutes(1);
    let rec = store
        .upsert_pending_node("worker-1", &ask("CSR-1", "sha256:k1"), later)
        .unwrap();
    assert_eq!(
        (rec.pending_csr.as_deref(), rec.enrolled_at, rec.last_seen),
        (Some("CSR-1"), t0(), Some(later))
    );
    let err = store
        .record_fleet_cert("worker-1", "0a", "sha256:00", "sha256:ca", later, later)
        .unwrap_err();
    assert_eq!(err.kind(), "node_refused");
    let rec = store
        .approve_key("worker-1", "sha256:k1", "admin:ops", later)
        .unwrap();
    assert_eq!(rec.approved_by.as_deref(), Some("admin:ops"));
    assert_eq!(
        (
            rec.pending_csr.as_deref(),
            rec.pending_key.as_ref().map(|k| k.fingerprint.as_str())
        ),
        (Some("CSR-1"), Some("sha256:k1")),
        "kept until the fleet cert is signed"
    );
    store
        .record_fleet_cert(
            "worker-1",
            "0A",
            "sha256:ab",
            "sha256:ca",
            later + Duration::days(90),
            later,
        )
        .unwrap();
    let rec = store.node("worker-1").unwrap().unwrap();
    let cert = rec.fleet_cert.unwrap();
    assert_eq!(cert.serial, "0a");
    assert_eq!(cert.key_fingerprint.as_deref(), Some("sha256:ab"));
    assert_eq!(cert.issuer.as_deref(), Some("sha256:ca"));
    assert_eq!((rec.pending_csr, rec.pending_key), (None, None));
}

pub fn checked_transitions(store: &dyn Store) {
    use NodeState::*;
    let set = |node, to| store.set_node_state(node, to, "admin:ops", t0());
    store
        .upsert_pending_node("p", &ask("CSR", "sha256:p"), t0())
        .unwrap();
    assert_eq!(set("p", Revoked).unwrap_err().kind(), "invalid_transition");
    assert_eq!(
        set("p", Pending).unwrap().state,
        Pending,
        "same state is a no-op"
    );
    assert_eq!(set("p", Denied).unwrap().pending_csr, None);
    assert_eq!(set("p", Revoked).unwrap_err().kind(), "invalid_transition");
    let refused = store
        .upsert_pending_node("p", &ask("CSR", "sha256:p"), t0())
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::NodeRefused { state: Denied, .. }),
        "{refused}"
    );
    assert_eq!(
        set("p", Approved).unwrap().state,
        Approved,
        "an admin may overrule a denial"
    );
    assert_eq!(set("p", Denied).unwrap_err().kind(), "invalid_transition");
    let refused = store
        .upsert_pending_node("p", &ask("CSR", "sha256:p"), t0())
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::NodeRefused {
                state: Approved,
                ..
            }
        ),
        "{refused}"
    );
    let rec = set("p", Revoked).unwrap();
    assert_eq!(
        (rec.state, rec.state_changed_by.as_str()),
        (Revoked, "admin:ops")
    );
    for to in [Approved, Denied, Pending] {
        let err = set("p", to).unwrap_err();
        assert!(err.to_string().contains("token create --node"), "{err}");
    }
    assert_eq!(
        store
            .upsert_pending_node("p", &ask("CSR", "sha256:p"), t0())
            .unwrap_err()
            .kind(),
        "node_refused"
    );
    assert_eq!(set("nobody", Approved).unwrap_err().kind(), "unknown_node");
    // Only a token for exactly this node brings a revoked node back.
    let used = store
        .redeem_token(&node_token(store, "p").token, "p", t0())
        .unwrap();
    assert_eq!(
        (used.previous_state, used.node.state),
        (Some(Revoked), Approved)
    );
}

/// Issue 17 finding 6: each revocation makes the next enrollment a new generation (which names
/// new etcd users); re-enrolling, repeating a revocation or approving keep it.
pub fn a_revocation_starts_a_new_enrollment_generation(store: &dyn Store) {
    use NodeState::*;
    let enroll = |store: &dyn Store| {
        store
            .redeem_token(&node_token(store, "g").token, "g", t0())
            .unwrap()
            .node
    };
    assert_eq!(enroll(store).generation, 0);
    let revoke = || {
        store
            .set_node_state("g", Revoked, "admin:ops", t0())
            .unwrap()
    };
    assert_eq!(revoke().generation, 1);
    assert_eq!(revoke().generation, 1, "revoking again is a no-op");
    assert_eq!(store.node("g").unwrap().unwrap().generation, 1);
    let back = enroll(store);
    assert_eq!((back.state, back.generation), (Approved, 1));
    assert_eq!(
        enroll(store).generation,
        1,
        "a re-enrollment is no revocation"
    );
    assert_eq!(revoke().generation, 2);
    assert_eq!(enroll(store).generation, 2);
}

pub fn reports_and_last_seen(store: &dyn Store) {
    assert_eq!(
        store.touch("ghost", t0()).unwrap_err().kind(),
        "unknown_node"
    );
    store
        .redeem_token(&node_token(store, "w").token, "w", t0())
        .unwrap();
    let report = calseg_api::report::Report {
        revision: "7".into(),
        identities: Vec::new(),
        units: Vec::new(),
        errors: Vec::new(),
    };
    store
        .record_report("w", report.clone(), t0() + Duration::seconds(10))
        .unwrap();
    store.touch("w", t0() + Duration::seconds(5)).unwrap();
    let rec = store.node("w").unwrap().unwrap();
    assert_eq!(rec.last_report, Some(report.into()));
    assert_eq!(
        rec.last_seen,
        Some(t0() + Duration::seconds(10)),
        "never goes backwards"
    );
    store.touch("w", t0() + Duration::seconds(20)).unwrap();
    assert_eq!(
        store.node("w").unwrap().unwrap().last_seen,
        Some(t0() + Duration::seconds(20))
    );
}

pub fn serials_are_unique_and_indexed_by_node(store: &dyn Store) {
    for n in ["a", "ab", "b"] {
        store
            .redeem_token(&node_token(store, n).token, n, t0())
            .unwrap();
    }
    assert_eq!(
        store
            .record_issued(cert("01", "zz", "x"))
            .unwrap_err()
            .kind(),
        "unknown_node"
    );
    store.record_issued(cert("01", "a", "fleet")).unwrap();
    store.record_issued(cert("0F", "a", "calico-node")).unwrap();
    store
        .record_issued(cert("02", "ab", "calico-node"))
        .unwrap();
    let err = store
        .record_issued(cert("0f", "b", "calico-node"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateSerial { ref node, .. } if node == "a"),
        "{err}"
    );
    assert_eq!(
        store
            .record_issued(cert("0x1", "b", "c"))
            .unwrap_err()
            .kind(),
        "invalid_serial"
    );
    let serials = |n| {
        store
            .issued_for_node(n)
            .unwrap()
            .into_iter()
            .map(|c| c.serial)
            .collect::<Vec<_>>()
    };
    assert_eq!(serials("a"), ["01", "0f"]);
    assert_eq!(serials("ab"), ["02"]);
    assert!(serials("b").is_empty());
}

pub fn a_certificate_and_its_audit_entry_are_recorded_together_or_not_at_all(store: &dyn Store) {
    let entry = |serial: &str| super::records::entry(AuditAction::Issue, serial);
    let before = store.audit(0, 100).unwrap().len();
    // Refused (unknown node, then a duplicate serial): neither record nor audit entry.
    let err = store
        .record_issued_audited(cert("0a", "n", "calico-node"), entry("0a"))
        .unwrap_err();
    assert_eq!(err.kind(), "unknown_node");
    store
        .redeem_token(&node_token(store, "n").token, "n", t0())
        .unwrap();
    let after_redeem = store.audit(0, 100).unwrap().len();
    assert_eq!(after_redeem, before, "redeeming writes no audit entry here");
    let seq = store
        .record_issued_audited(cert("0a", "n", "calico-node"), entry("0a"))
        .unwrap();
    let err = store
        .record_issued_audited(cert("0A", "n", "calico-felix"), entry("0A again"))
        .unwrap_err();
    assert_eq!(err.kind(), "duplicate_serial");
    let audit = store.audit(0, 100).unwrap();
    assert_eq!(audit.len(), before + 1, "{audit:?}");
    assert_eq!(
        (audit[before].seq, audit[before].subject.as_str()),
        (seq, "0a")
    );
    let issued = store.issued_for_node("n").unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].component, "calico-node");
}

/// A node's standing (what every call of it is checked against) is its full record's.
pub fn the_standing_of_a_node_is_its_records(store: &dyn Store) {
    assert_eq!(store.node_standing("s").unwrap(), None);
    store
        .redeem_token(&node_token(store, "s").token, "s", t0())
        .unwrap();
    store
        .record_fleet_cert(
            "s",
            "0c",
            "sha256:k",
            "sha256:ca",
            t0() + Duration::days(1),
            t0(),
        )
        .unwrap();
    let report = calseg_api::report::Report {
        revision: "r1".into(),
        identities: Vec::new(),
        units: Vec::new(),
        errors: vec!["a long report is skipped, not decoded".into()],
    };
    store.record_report("s", report, t0()).unwrap();
    let check = |store: &dyn Store| {
        let record = store.node("s").unwrap().unwrap();
        let standing = store.node_standing("s").unwrap().unwrap();
        assert_eq!(standing.state, record.state);
        assert_eq!(standing.generation, record.generation);
        assert_eq!(
            standing.fleet_cert.map(|c| c.serial),
            record.fleet_cert.map(|c| c.serial)
        );
    };
    check(store);
    store
        .set_node_state("s", NodeState::Revoked, "admin:test", t0())
        .unwrap();
    check(store);
    assert_eq!(
        store.node_standing("s").unwrap().unwrap().state,
        NodeState::Revoked
    );
}

/// The signing's group commit: several certificates with their audit entries in one
/// transaction, each refused alone when it must be, numbered densely after what was there.
pub fn a_batch_of_certificates_is_recorded_in_one_commit_each_refused_alone(store: &dyn Store) {
    let entry = |serial: &str| super::records::entry(AuditAction::Issue, serial);
    store
        .redeem_token(&node_token(store, "g").token, "g", t0())
        .unwrap();
    store
        .record_issued_audited(cert("b0", "g", "calico-node"), entry("b0"))
        .unwrap();
    let before = store.audit(0, 1000).unwrap();
    let last = before.last().map_or(0, |e| e.seq);
    let batch = [
        (cert("b1", "g", "calico-node"), entry("b1")),
        // Refused alone: an unknown node, a serial stored before, one twice in the batch, a
        // serial that is not hex.
        (cert("b2", "nobody", "calico-node"), entry("b2")),
        (cert("B0", "g", "calico-felix"), entry("B0")),
        (cert("b3", "g", "calico-felix"), entry("b3")),
        (cert("b3", "g", "confd"), entry("b3 again")),
        (cert("zz", "g", "confd"), entry("zz")),
        (cert("b4", "g", "confd"), entry("b4")),
    ];
    let results = store.record_issued_batch(&batch).unwrap();
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.kind(), |_| "ok"))
        .collect();
    assert_eq!(
        kinds,
        [
            "ok",
            "unknown_node",
            "duplicate_serial",
            "ok",
            "duplicate_serial",
            "invalid_serial",
            "ok"
        ]
    );
    let seqs: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(
        seqs,
        [last + 1, last + 2, last + 3],
        "dense, in the batch's order"
    );
    let audit = store.audit(last, 100).unwrap();
    let subjects: Vec<(u64, &str)> = audit.iter().map(|e| (e.seq, e.subject.as_str())).collect();
    assert_eq!(
        subjects,
        [(last + 1, "b1"), (last + 2, "b3"), (last + 3, "b4")],
        "only the recorded certificates are audited"
    );
    let mut serials: Vec<String> = store
        .issued_for_node("g")
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    serials.sort();
    assert_eq!(serials, ["b0", "b1", "b3", "b4"]);
    // The next single append continues the numbering.
    let next = store
        .record_issued_audited(cert("b5", "g", "calico-node"), entry("b5"))
        .unwrap();
    assert_eq!(next, last + 4);
    // An empty batch writes nothing.
    assert!(store.record_issued_batch(&[]).unwrap().is_empty());
    assert_eq!(store.audit(0, 1000).unwrap().len(), before.len() + 4);
}

pub fn a_pending_request_binds_one_key_and_another_key_is_refused(store: &dyn Store) {
    store
        .upsert_pending_node("pend-1", &ask("CSR-agent", "sha256:agent"), t0())
        .unwrap();
    let before = store.node("pend-1").unwrap();
    // Issue 17, finding 1: another key for the same name never replaces the pending one.
    let later = t0() + Duration::minutes(1);
    let refused = store
        .upsert_pending_node("pend-1", &ask("CSR-attacker", "sha256:attacker"), later)
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::PendingKeyMismatch { pending, offered, .. }
            if pending == "sha256:agent" && offered == "sha256:attacker"),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("nodes delete pend-1"),
        "{refused}"
    );
    assert_eq!(store.node("pend-1").unwrap(), before, "nothing changed");
    // Not even once the agent's key is approved.
    store
        .approve_key("pend-1", "sha256:agent", "admin:ops", later)
        .unwrap();
    let refused = store
        .upsert_pending_node("pend-1", &ask("CSR-attacker", "sha256:attacker"), later)
        .unwrap_err();
    assert_eq!(refused.kind(), "node_refused");
    let rec = store.node("pend-1").unwrap().unwrap();
    assert_eq!(
        rec.pending_key.map(|k| (k.fingerprint, k.source)),
        Some(("sha256:agent".to_owned(), "192.0.2.1".to_owned()))
    );
}

pub fn approval_names_the_key_by_its_fingerprint(store: &dyn Store) {
    store
        .upsert_pending_node("p", &ask("CSR", "sha256:good"), t0())
        .unwrap();
    let before = store.node("p").unwrap();
    let wrong = store
        .approve_key("p", "sha256:bad", "admin:ops", t0())
        .unwrap_err();
    assert!(
        matches!(&wrong, StoreError::FingerprintMismatch { pending: Some(p), .. } if p == "sha256:good"),
        "{wrong}"
    );
    assert!(
        wrong.to_string().contains("--fingerprint sha256:good"),
        "{wrong}"
    );
    assert_eq!(store.node("p").unwrap(), before, "nothing changed");
    assert_eq!(
        store
            .approve_key("nobody", "sha256:good", "admin:ops", t0())
            .unwrap_err()
            .kind(),
        "unknown_node"
    );
    // A denied node keeps the key it asked with: an admin may still approve exactly that key.
    store
        .set_node_state("p", NodeState::Denied, "admin:ops", t0())
        .unwrap();
    let rec = store
        .approve_key("p", "sha256:good", "admin:ops", t0())
        .unwrap();
    assert_eq!(rec.state, NodeState::Approved);
    assert_eq!(
        store
            .approve_key("p", "sha256:good", "admin:ops", t0())
            .unwrap()
            .state,
        NodeState::Approved,
        "approving again is a no-op"
    );
    // An enrolled node (token) has no key waiting.
    store
        .redeem_token(&node_token(store, "t").token, "t", t0())
        .unwrap();
    let err = store
        .approve_key("t", "sha256:good", "admin:ops", t0())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::FingerprintMismatch { pending: None, .. }),
        "{err}"
    );
}

pub fn pending_nodes_are_capped_deleted_and_expire(store: &dyn Store) {
    let capped = |csr: &str| calseg_server::store::PendingAsk {
        max_pending: 3,
        ..ask(csr, &format!("sha256:{csr}"))
    };
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let at = t0() + Duration::minutes(i64::try_from(i).unwrap());
        store.upsert_pending_node(name, &capped(name), at).unwrap();
    }
    let full = store
        .upsert_pending_node("d", &capped("d"), t0())
        .unwrap_err();
    assert!(
        matches!(full, StoreError::TooManyPending { max: 3 }),
        "{full}"
    );
    assert!(store.node("d").unwrap().is_none(), "nothing created");
    // A known pending node asking again is not a new one.
    store.upsert_pending_node("a", &capped("a"), t0()).unwrap();
    // Approving one frees its place.
    store
        .approve_key("a", "sha256:a", "admin:ops", t0())
        .unwrap();
    store.upsert_pending_node("d", &capped("d"), t0()).unwrap();
    // Deleting: pending and denied only; an enrolled node points to revoke.
    let err = store.delete_node("a").unwrap_err();
    assert_eq!(err.kind(), "node_not_deletable");
    assert!(err.to_string().contains("nodes revoke a"), "{err}");
    assert_eq!(
        store.delete_node("ghost").unwrap_err().kind(),
        "unknown_node"
    );
    assert_eq!(store.delete_node("d").unwrap().name, "d");
    assert!(store.node("d").unwrap().is_none());
    store.upsert_pending_node("e", &capped("e"), t0()).unwrap();
    // The deleted name may ask again, with any key.
    assert_eq!(
        store
            .upsert_pending_node("d", &capped("d"), t0())
            .unwrap_err()
            .kind(),
        "too_many_pending"
    );
    // Expiry: b was first seen at t0+1m, c at t0+2m, e at t0; a ttl of 90s at t0+2m30s
    // drops e and b, keeps c and the approved a.
    let now = t0() + Duration::seconds(150);
    let mut dropped: Vec<String> = store
        .expire_pending(now, Duration::seconds(90))
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    dropped.sort();
    assert_eq!(dropped, ["b", "e"]);
    let names: Vec<String> = store.nodes().unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["a", "c"]);
    assert!(
        store
            .expire_pending(now, Duration::seconds(90))
            .unwrap()
            .is_empty()
    );
    // Their places are free again.
    store.upsert_pending_node("d", &capped("d"), now).unwrap();
    store.upsert_pending_node("f", &capped("f"), now).unwrap();
}
