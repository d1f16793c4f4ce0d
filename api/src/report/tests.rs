use super::*;

/// A report as agents send it today and as server records hold it (issue 19, point 2).
const TODAY: &str = r#"{
  "revision": "3f9a",
  "identities": [
    {"component": "calico-node", "serial": "0a1b", "not_after": "2026-12-01T00:00:00Z", "status": "installed"},
    {"component": "cni-plugin", "serial": null, "not_after": null, "status": "lease_denied"}
  ],
  "units": [{"unit": "calico-node.service", "active_state": "active", "n_restarts": 2, "restarted": true}],
  "errors": ["cni-plugin: no restart lease"]
}"#;

#[test]
fn every_known_status_reads_and_writes_its_wire_form() {
    for (status, text) in IdentityStatus::KNOWN {
        assert_eq!(IdentityStatus::from(text), status);
        assert_eq!(status.as_str(), text);
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<IdentityStatus>(&json).unwrap(),
            status
        );
    }
    let converged: Vec<&str> = IdentityStatus::KNOWN
        .iter()
        .filter(|(status, _)| status.is_converged())
        .map(|(_, text)| *text)
        .collect();
    assert_eq!(converged, ["installed", "unchanged"]);
}

#[test]
fn issue_19_a_report_of_today_reads_typed_and_writes_back_the_same_json() {
    let report: Report = serde_json::from_str(TODAY).unwrap();
    assert_eq!(report.identities[0].status, IdentityStatus::Installed);
    assert_eq!(report.identities[1].status, IdentityStatus::LeaseDenied);
    let again: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(
        again,
        serde_json::from_str::<serde_json::Value>(TODAY).unwrap()
    );
}

#[test]
fn issue_19_an_unknown_status_from_a_newer_agent_is_kept_not_refused() {
    let newer = TODAY.replace("lease_denied", "quarantined");
    let report: Report = serde_json::from_str(&newer).unwrap();
    let status = &report.identities[1].status;
    assert_eq!(*status, IdentityStatus::Unknown("quarantined".into()));
    assert!(!status.is_converged());
    assert_eq!(status.to_string(), "quarantined");
    // Shown and stored as it was sent.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["identities"][1]["status"], "quarantined");
}

#[test]
fn issue_19_a_stored_last_report_reads_typed_and_an_unreadable_one_is_kept() {
    let stored: LastReport = serde_json::from_str(TODAY).unwrap();
    let report = stored.report().unwrap();
    assert_eq!(report.revision, "3f9a");
    assert_eq!(report.units[0].n_restarts, 2);

    // Older records may lack `errors` (it has a default).
    let old: LastReport =
        serde_json::from_str(r#"{"revision": "r1", "identities": [], "units": []}"#).unwrap();
    assert_eq!(old.report().unwrap().errors, Vec::<String>::new());

    let nonsense = serde_json::json!({"nonsense": true});
    let stored: LastReport = serde_json::from_value(nonsense.clone()).unwrap();
    match &stored {
        LastReport::Unreadable { json, error } => {
            assert_eq!(*json, nonsense);
            assert!(error.contains("revision"), "{error}");
        }
        LastReport::Read(_) => panic!("read nonsense as a report"),
    }
    assert_eq!(serde_json::to_value(&stored).unwrap(), nonsense);
}
