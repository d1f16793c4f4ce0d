//! Issue 17, finding 7: node-supplied text must not reach the operator's terminal raw, and the
//! dates an operator sees come from the server's own issued records. A node (or whoever holds
//! its fleet key) reports ESC/OSC sequences, CR/LF with a forged table row, and an expiry of
//! 2099 for a certificate that really expires in days; `nodes list`, `audit` and the metrics
//! show escaped text and the server's date.

use calseg_api::report::{IdentityReport, Report, UnitReport};
use calseg_tests::api_client::TestNode;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[identity]
lifetime = "3d"
[components.calico-node]
grants = "calico-node"
restart = ["calico-node.service"]
[[hosts]]
names = ["node1"]
components = ["calico-node"]
"#
    )
}

/// The hostile parts of the report: a screen clear and cursor move, an OSC window title, a
/// carriage return and line feed followed by a forged row, a C1 CSI and a bidi override.
const CLEAR_AND_HOME: &str = "\u{1b}[2J\u{1b}[1;1H";
const OSC_TITLE: &str = "\u{1b}]0;owned\u{7}";
const FORGED_ROW: &str = "\r\nnode9                    approved  2099-01-01T00:00:00Z";
const C1_AND_BIDI: &str = "\u{9b}31m\u{202e}";
/// The expiry the node claims for a certificate the server issued for three days.
const CLAIMED_EXPIRY: &str = "2098-06-01T00:00:00Z";

fn hostile_report(serial: &str) -> Report {
    Report {
        revision: format!("r1{OSC_TITLE}"),
        identities: vec![IdentityReport {
            component: "calico-node".into(),
            serial: Some(serial.into()),
            not_after: Some(CLAIMED_EXPIRY.into()),
            status: format!("installed{CLEAR_AND_HOME}").into(),
        }],
        units: vec![UnitReport {
            unit: format!("calico-node.service{FORGED_ROW}"),
            active_state: format!("failed{C1_AND_BIDI}"),
            n_restarts: 1,
            restarted: true,
        }],
        errors: vec![format!("boom{CLEAR_AND_HOME}{OSC_TITLE}{FORGED_ROW}")],
    }
}

/// Characters a terminal would act on (anything but the line feeds between lines).
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
        .collect()
}

#[tokio::test]
async fn node_supplied_text_is_escaped_and_dates_come_from_issued_records() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let mut node = TestNode::new("node1", &server.url(), &server.fleet_ca_pem()).expect("node");
    let token = server.token_for("node1", "1h").expect("token");
    let enrolled = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(enrolled.status, StatusCode::OK, "{enrolled:?}");
    let (signed, _key) = node
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let serial = signed.body["serial"].as_str().expect("serial").to_owned();
    let issued_not_after = signed.body["not_after"]
        .as_str()
        .expect("not_after")
        .to_owned();
    assert!(!issued_not_after.starts_with("2099"), "{issued_not_after}");

    let posted = node.report(&hostile_report(&serial)).await.expect("report");
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{posted:?}");

    // The table: a header and one row, nothing a terminal acts on, the server's expiry.
    let table = server.cli_ok(&["nodes", "list"]).expect("nodes list");
    assert!(controls(&table).is_empty(), "raw controls in: {table:?}");
    assert_eq!(
        table.lines().count(),
        2,
        "a forged row got through: {table:?}"
    );
    assert!(
        !table.contains("2098"),
        "the node's claimed expiry is shown: {table}"
    );
    assert!(table.contains(&issued_not_after), "{table}");
    assert!(
        table.contains("\\u{1b}[2J") && table.contains("\\r\\nnode9"),
        "the hostile text is shown escaped: {table}"
    );

    // The expiry filters and the metrics use the issued date (3 days), not 2099.
    let listed = server
        .cli_ok(&["nodes", "list", "--json", "--expiring-within", "4d"])
        .expect("nodes list --json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("json");
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(
        rows[0]["inventory"]["certificates"][0]["not_after"].as_i64(),
        time::OffsetDateTime::parse(
            &issued_not_after,
            &time::format_description::well_known::Rfc3339
        )
        .ok()
        .map(|t| t.unix_timestamp()),
        "{listed}"
    );
    let scrape = server.scrape().await.expect("scrape");
    assert!(
        scrape
            .lines()
            .any(|l| l == r#"calseg_certificates_expiring{within="7d"} 1"#),
        "{scrape}"
    );

    // A serial the server never issued to this node: no date, and the node shows as drifted.
    let mut forged = hostile_report("0badc0de");
    forged.errors.clear();
    let posted = node.report(&forged).await.expect("report");
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{posted:?}");
    let listed = server
        .cli_ok(&["nodes", "list", "--json"])
        .expect("nodes list --json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("json");
    let inventory = &rows[0]["inventory"];
    assert_eq!(inventory["certificates"], serde_json::json!([]), "{listed}");
    assert!(
        inventory["errors"][0].as_str().is_some_and(
            |e| e.contains("serial 0badc0de") && e.contains("not one this server issued")
        ),
        "{listed}"
    );
    assert_eq!(inventory["drift"], true, "{listed}");

    // Every human-readable view of the same records stays clean.
    for args in [
        &["nodes", "list"][..],
        &["nodes", "list", "--failed"],
        &["audit"],
        &["rollout", "status"],
        &["nodes", "show", "node1"],
        &["nodes", "show", "node1", "-o", "wide"],
    ] {
        let output = server.cli(args).expect("cli");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(controls(&text).is_empty(), "{args:?}: {text:?}");
    }
}
