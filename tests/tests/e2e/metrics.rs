//! Issue 7 end to end: the real calseg-server's Prometheus metrics on their plain-HTTP
//! listener (node states, issuance, denials by kind, latency by route template, expiring
//! certificates from reports) and the node inventory's server-side filters behind
//! `calseg-server nodes list`.

use calseg_api::report::{IdentityReport, Report, UnitReport};
use calseg_tests::api_client::TestNode;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(crate) fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[identity]
lifetime = "5d"
[components.calico-node]
grants = "calico-node"
restart = ["calico-node.service"]
[[hosts]]
names = ["node1", "node2"]
components = ["calico-node"]
"#
    )
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
pub(crate) fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// A report of an installed calico-node certificate `serial`, with the expiry the node claims.
fn report(serial: &str, not_after: OffsetDateTime, unit_state: &str, errors: &[&str]) -> Report {
    Report {
        revision: "r1".into(),
        identities: vec![IdentityReport {
            component: "calico-node".into(),
            serial: Some(serial.into()),
            not_after: Some(not_after.format(&Rfc3339).expect("format")),
            status: "installed".into(),
        }],
        units: vec![UnitReport {
            unit: "calico-node.service".into(),
            active_state: unit_state.into(),
            n_restarts: 1,
            restarted: true,
        }],
        errors: errors.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// Node names `nodes list --json ARGS…` returns.
fn listed(server: &ServerProcess, args: &[&str]) -> Vec<String> {
    let mut cli = vec!["nodes", "list", "--json"];
    cli.extend_from_slice(args);
    let out = server.cli_ok(&cli).expect("nodes list");
    let nodes: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    nodes
        .iter()
        .map(|n| n["name"].as_str().expect("name").to_owned())
        .collect()
}

pub(crate) async fn enrolled(server: &ServerProcess, name: &str) -> TestNode {
    let mut node = TestNode::new(name, &server.url(), &server.fleet_ca_pem()).expect("node");
    let token = server.token_for(name, "1h").expect("token");
    let answer = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    node
}

#[tokio::test]
async fn metrics_count_issuance_denials_and_latency_and_the_inventory_filters_nodes() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let node1 = enrolled(&server, "node1").await;
    assert_eq!(
        node1.manifest(None).await.expect("manifest").status,
        StatusCode::OK
    );
    let (signed, _) = node1
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let node1_serial = signed.body["serial"].as_str().expect("serial").to_owned();
    let (refused, _) = node1
        .sign("calico-node", "calico-node.node2")
        .await
        .expect("sign");
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert_eq!(refused.kind(), "wrong_common_name");

    let scrape = server.scrape().await.expect("scrape");
    // Rollout progress: the policy in force is revision 1, and the enrolled node is counted.
    assert!(
        scrape.lines().any(|l| l == "calseg_policy_revision 1"),
        "{scrape}"
    );
    assert!(
        scrape.contains("calseg_rollout_nodes{convergence=\"pending\"}"),
        "{scrape}"
    );
    let value = |series: &str| sample(&scrape, series);
    assert_eq!(
        value(r#"calseg_nodes{state="approved"}"#),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value(r#"calseg_nodes{state="pending"}"#),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(
        value(r#"calseg_certificates_issued_total{kind="component"}"#),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value(r#"calseg_certificates_issued_total{kind="fleet"}"#),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value(r#"calseg_requests_denied_total{kind="wrong_common_name"}"#),
        Some(1.0),
        "{scrape}"
    );
    for (route, class, count) in [
        ("/v1/manifest", "2xx", 1.0),
        ("/v1/certificates", "2xx", 1.0),
        ("/v1/certificates", "4xx", 1.0),
    ] {
        let labels = format!(r#"route="{route}",status="{class}""#);
        assert_eq!(
            value(&format!(
                "calseg_http_request_duration_seconds_bucket{{le=\"+Inf\",{labels}}}"
            )),
            Some(count),
            "{scrape}"
        );
        assert!(
            value(&format!(
                "calseg_http_request_duration_seconds_bucket{{le=\"0.005\",{labels}}}"
            ))
            .is_some(),
            "{scrape}"
        );
    }
    assert!(
        scrape.contains("# TYPE calseg_http_request_duration_seconds histogram"),
        "{scrape}"
    );
    // Node names are labels of the per-identity expiry only (one series per live identity).
    assert!(
        scrape
            .lines()
            .filter(|l| l.contains("node1"))
            .all(|l| l.starts_with("calseg_certificate_expiration_timestamp_seconds{")),
        "node names must not be labels elsewhere: {scrape}"
    );

    // Reports: node1 healthy with its real certificate (5 days, though it claims a month);
    // node2 with a failed unit and a serial the server never issued (claiming two days left).
    let node2 = enrolled(&server, "node2").await;
    let now = OffsetDateTime::now_utc();
    let posted = node1
        .report(&report(
            &node1_serial,
            now + time::Duration::days(30),
            "active",
            &[],
        ))
        .await
        .expect("report");
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{posted:?}");
    let posted = node2
        .report(&report(
            "0a",
            now + time::Duration::days(2),
            "failed",
            &["restart failed"],
        ))
        .await
        .expect("report");
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{posted:?}");

    assert_eq!(listed(&server, &[]), ["node1", "node2"]);
    assert_eq!(listed(&server, &["--failed"]), ["node2"]);
    // Expiry is the issued one: node1's 5 days, and nothing for node2's unknown serial.
    assert_eq!(listed(&server, &["--expiring-within", "7d"]), ["node1"]);
    assert!(listed(&server, &["--expiring-within", "4d"]).is_empty());
    assert_eq!(listed(&server, &["--expiring-within", "60d"]), ["node1"]);
    assert!(listed(&server, &["--not-seen-since", "1h"]).is_empty());
    let table = server
        .cli_ok(&["nodes", "list", "--failed"])
        .expect("table");
    assert!(
        table.contains("node2")
            && table.contains("failed: calico-node.service (failed)")
            && table.contains("restart failed")
            && table.contains("serial 0a) is not one this server issued")
            && !table.contains("node1"),
        "{table}"
    );

    let scrape = server.scrape().await.expect("scrape");
    assert_eq!(
        sample(&scrape, r#"calseg_nodes{state="approved"}"#),
        Some(2.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, r#"calseg_certificates_expiring{within="7d"}"#),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, r#"calseg_certificates_expiring{within="1d"}"#),
        Some(0.0),
        "{scrape}"
    );

    // Seen more than 2 s ago: both; then node1 reports and is seen again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        listed(&server, &["--not-seen-since", "2s"]),
        ["node1", "node2"]
    );
    node1
        .report(&report(
            &node1_serial,
            now + time::Duration::days(30),
            "active",
            &[],
        ))
        .await
        .expect("report");
    assert_eq!(listed(&server, &["--not-seen-since", "2s"]), ["node2"]);
}
