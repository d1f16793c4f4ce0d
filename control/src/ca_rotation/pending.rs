//! The live identities that still depend on a CA: what `finish` (and the end of a rollback)
//! waits for. Live means what the node last reported installed, and the newest unexpired
//! certificate calseg issued it per component (a node that got one and has not reported yet).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::store::{IssuedRecord, NodeRecord, NodeState};

/// `node/component` of every live identity of `nodes` (each with its issued certificates)
/// whose certificate does not come from the CA `target`. A certificate recorded before
/// issuers were recorded came from `before` (the CA in force when the rotation began).
pub fn old_ca_identities(
    nodes: &[(NodeRecord, Vec<IssuedRecord>)],
    target: &str,
    before: &str,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut out = Vec::new();
    for (node, issued) in nodes {
        if node.state != NodeState::Approved {
            continue;
        }
        let issuer_of = |record: &'_ IssuedRecord| -> String {
            record.issuer.clone().unwrap_or_else(|| before.to_owned())
        };
        let mut stale: BTreeMap<&str, &'static str> = BTreeMap::new();
        // The newest unexpired certificate per component (fleet certificates aside).
        let mut newest: BTreeMap<&str, &IssuedRecord> = BTreeMap::new();
        for record in issued
            .iter()
            .filter(|r| r.component != "fleet" && r.not_after > now)
        {
            let slot = newest.entry(record.component.as_str()).or_insert(record);
            if record.issued_at > slot.issued_at {
                *slot = record;
            }
        }
        for (component, record) in &newest {
            if issuer_of(record) != target {
                stale.insert(component, "newest certificate");
            }
        }
        let reported = node
            .last_report
            .as_ref()
            .and_then(|r| r.report())
            .map(|r| r.identities.as_slice())
            .unwrap_or_default();
        for identity in reported {
            let Some(serial) = identity.serial.as_deref() else {
                continue;
            };
            let from_target = issued
                .iter()
                .find(|r| r.serial.eq_ignore_ascii_case(serial))
                .is_some_and(|r| issuer_of(r) == target || r.not_after <= now);
            if !from_target {
                stale.insert(identity.component.as_str(), "installed certificate");
            }
        }
        out.extend(
            stale
                .into_iter()
                .map(|(component, what)| format!("{}/{component} ({what})", node.name)),
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use calseg_api::report::{IdentityReport, IdentityStatus, LastReport, Report};

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn cert(serial: &str, issued_at: i64, issuer: Option<&str>) -> IssuedRecord {
        IssuedRecord {
            serial: serial.into(),
            cn: "calico-node.a".into(),
            node: "a".into(),
            component: "calico-node".into(),
            not_before: at(issued_at),
            not_after: at(issued_at + 1000),
            issued_at: at(issued_at),
            issuer: issuer.map(str::to_owned),
        }
    }

    fn node(reported: Option<&str>) -> NodeRecord {
        let mut node = NodeRecord::new("a", NodeState::Approved, at(0));
        node.last_report = reported.map(|serial| {
            LastReport::Read(Report {
                revision: "r".into(),
                identities: vec![IdentityReport {
                    component: "calico-node".into(),
                    serial: Some(serial.into()),
                    not_after: None,
                    status: IdentityStatus::Installed,
                }],
                units: Vec::new(),
                errors: Vec::new(),
            })
        });
        node
    }

    #[test]
    fn an_identity_is_pending_until_installed_and_newest_both_come_from_the_target() {
        let old = cert("01", 10, None);
        let new = cert("02", 20, Some("sha256:new"));
        let pending = |n: NodeRecord, issued: Vec<IssuedRecord>| {
            old_ca_identities(&[(n, issued)], "sha256:new", "sha256:old", at(100))
        };
        assert_eq!(
            pending(node(Some("01")), vec![old.clone()]),
            ["a/calico-node (installed certificate)"]
        );
        // Issued but not yet installed: the installed one still counts.
        assert_eq!(
            pending(node(Some("01")), vec![old.clone(), new.clone()]),
            ["a/calico-node (installed certificate)"]
        );
        assert!(pending(node(Some("02")), vec![old.clone(), new.clone()]).is_empty());
        // Never reported: the newest certificate decides.
        assert_eq!(
            pending(node(None), vec![old.clone()]),
            ["a/calico-node (newest certificate)"]
        );
        assert!(pending(node(None), vec![old.clone(), new]).is_empty());
        // A serial calseg never issued counts as old.
        assert_eq!(pending(node(Some("ff")), vec![]).len(), 1);
    }

    #[test]
    fn expired_certificates_and_revoked_nodes_depend_on_nothing() {
        let old = cert("01", 10, None);
        let later = at(10_000);
        assert!(
            old_ca_identities(
                &[(node(Some("01")), vec![old.clone()])],
                "sha256:new",
                "sha256:old",
                later
            )
            .is_empty()
        );
        let mut revoked = node(Some("01"));
        revoked.state = NodeState::Revoked;
        assert!(
            old_ca_identities(&[(revoked, vec![old])], "sha256:new", "sha256:old", at(100))
                .is_empty()
        );
    }
}
