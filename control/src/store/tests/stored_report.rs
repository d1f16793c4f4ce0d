//! Issue 19, point 2: node records stored before the report was typed (its JSON as the agent
//! sent it) read back into the typed report, through the store's own decoder; a status from a
//! newer agent is kept as `Unknown`, and the record writes back the same JSON.

use calseg_api::report::{IdentityStatus, LastReport};

use crate::store::NodeRecord;
use crate::store::codec::{decode, encode};

/// A node record as both stores hold it today (redb value, etcd value).
const STORED: &str = r#"{"name":"worker-1","state":"approved","enrolled_at":1750000000,"approved_by":"token:ab12","state_changed_at":1750000000,"state_changed_by":"token:ab12","fleet_cert":{"serial":"0a1b","not_after":1752592000,"key_fingerprint":"sha256:00ff"},"last_seen":1750000600,"last_report":{"revision":"3f9a","identities":[{"component":"calico-node","serial":"0c","not_after":"2026-12-01T00:00:00Z","status":"installed"},{"component":"cni-plugin","serial":null,"not_after":null,"status":"lease_denied"}],"units":[{"unit":"calico-node.service","active_state":"active","n_restarts":1,"restarted":true}],"errors":["cni-plugin: no restart lease"]},"pending_csr":null,"generation":0,"pending_key":null}"#;

fn read(text: &str) -> NodeRecord {
    decode("nodes", "worker-1", text.as_bytes()).unwrap()
}

fn json(record: &NodeRecord) -> serde_json::Value {
    serde_json::from_slice(&encode("nodes", "worker-1", record).unwrap()).unwrap()
}

#[test]
fn issue_19_a_stored_record_of_today_reads_its_report_typed() {
    let record = read(STORED);
    let Some(LastReport::Read(report)) = &record.last_report else {
        panic!("not read typed: {:?}", record.last_report);
    };
    assert_eq!(report.revision, "3f9a");
    assert_eq!(report.identities[0].status, IdentityStatus::Installed);
    assert_eq!(report.identities[1].status, IdentityStatus::LeaseDenied);
    assert_eq!(report.units[0].n_restarts, 1);
    assert_eq!(report.errors, ["cni-plugin: no restart lease"]);
    // Written back, the record is the same JSON.
    assert_eq!(
        json(&record),
        serde_json::from_str::<serde_json::Value>(STORED).unwrap()
    );
}

#[test]
fn issue_19_a_stored_status_from_a_newer_agent_is_unknown_not_an_error() {
    let newer = STORED.replace("lease_denied", "quarantined");
    let record = read(&newer);
    let report = record
        .last_report
        .as_ref()
        .and_then(LastReport::report)
        .unwrap();
    assert_eq!(
        report.identities[1].status,
        IdentityStatus::Unknown("quarantined".into())
    );
    assert_eq!(
        json(&record)["last_report"]["identities"][1]["status"],
        "quarantined"
    );
}

#[test]
fn issue_19_a_stored_report_this_version_cannot_read_keeps_the_record_readable() {
    let odd = STORED.replace(r#""revision":"3f9a","#, "");
    let record = read(&odd);
    assert!(
        matches!(&record.last_report, Some(LastReport::Unreadable { error, .. }) if error.contains("revision")),
        "{:?}",
        record.last_report
    );
    assert_eq!(record.name, "worker-1");
    assert_eq!(
        json(&record),
        serde_json::from_str::<serde_json::Value>(&odd).unwrap()
    );
    // A record without a report (never reported) has none.
    let never = read(&STORED.replace(
        &STORED[STORED.find(",\"last_report\"").unwrap()..STORED.find(",\"pending_csr\"").unwrap()],
        "",
    ));
    assert_eq!(never.last_report, None);
}
