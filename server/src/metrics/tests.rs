use super::*;
use crate::etcd_release::{Answer, EtcdVersion, ReleaseReport, Reported};
use crate::store::{NodeRecord, NodeState};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

pub(super) fn node(name: &str, state: NodeState, report: Option<serde_json::Value>) -> NodeRecord {
    NodeRecord {
        last_seen: Some(at(0)),
        last_report: report.map(|json| serde_json::from_value(json).unwrap()),
        ..NodeRecord::new(name, state, at(0))
    }
}

pub(super) fn report_expiring(not_after: &str) -> serde_json::Value {
    serde_json::json!({
        "revision": "r1",
        "identities": [{"component": "calico-node", "serial": "ab", "not_after": not_after, "status": "installed"}],
        "units": [],
    })
}

/// One parsed sample: metric name, labels, value.
pub(super) type Sample = (String, BTreeMap<String, String>, f64);

/// Parses an exposition strictly: every line a comment of HELP/TYPE or a well-formed sample
/// whose family was declared (HELP and TYPE) before it. Panics on the first bad line.
pub(super) fn parse(text: &str) -> Vec<Sample> {
    let (mut helped, mut typed) = (BTreeSet::new(), BTreeMap::new());
    let mut samples = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap();
            assert!(name_ok(name), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap(), line)),
        };
        assert!(name_ok(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "no TYPE for {family}: {line}");
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

fn parse_labels(text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        }
        assert!(labels.insert(name, value).is_none(), "label twice: {line}");
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected {c:?}: {line}"),
        }
    }
    labels
}

/// The text-format scrape of `nodes` at `now`, without process metrics.
pub(super) fn render(metrics: &Metrics, nodes: &[NodeRecord], now: OffsetDateTime) -> String {
    let scrape = Scrape {
        process: false,
        ..Scrape::of(nodes, now)
    };
    metrics.render(&scrape, Format::Text)
}

pub(super) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
}

#[test]
fn the_exposition_parses_back_with_help_and_type_for_every_family() {
    let metrics = Metrics::new();
    metrics.issued(IssuedKind::Component);
    metrics.issued(IssuedKind::Fleet);
    metrics.issued(IssuedKind::Fleet);
    metrics.denied("wrong_common_name");
    metrics.denied("odd \"kind\"\\\n");
    metrics.request("/v1/manifest", 200, 0.003);
    metrics.request("/v1/manifest", 304, 0.2);
    metrics.request("/v1/certificates", 403, 99.0);
    metrics.reconciled(5, 5, at(1_700_000_000));
    metrics.reconcile_failed();
    let now = at(1_000_000);
    let nodes = [
        node(
            "a",
            NodeState::Approved,
            Some(report_expiring("1970-01-12T13:46:40Z")),
        ),
        node(
            "b",
            NodeState::Approved,
            Some(report_expiring("1970-01-18T00:00:00Z")),
        ),
        node("c", NodeState::Pending, None),
        // Revoked: its certificates no longer count.
        node(
            "d",
            NodeState::Revoked,
            Some(report_expiring("1970-01-12T13:46:40Z")),
        ),
    ];
    let samples = parse(&render(&metrics, &nodes, now));

    assert_eq!(
        value(&samples, "calseg_nodes", &[("state", "approved")]),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "calseg_nodes", &[("state", "pending")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "calseg_nodes", &[("state", "denied")]),
        Some(0.0)
    );
    // a expires at now (1_000_000 s after the epoch), b in about 5.4 days.
    let expiring = |w| value(&samples, "calseg_certificates_expiring", &[("within", w)]);
    assert_eq!(expiring("7d"), Some(2.0));
    assert_eq!(expiring("1d"), Some(1.0));
    let issued = |k| value(&samples, "calseg_certificates_issued_total", &[("kind", k)]);
    assert_eq!(
        (issued("component"), issued("fleet")),
        (Some(1.0), Some(2.0))
    );
    let denied = |k| value(&samples, "calseg_requests_denied_total", &[("kind", k)]);
    assert_eq!(denied("wrong_common_name"), Some(1.0));
    assert_eq!(
        denied("odd \"kind\"\\\n"),
        Some(1.0),
        "escaped and read back"
    );
    assert_eq!(value(&samples, "calseg_rbac_drift_changes", &[]), Some(5.0));
    assert_eq!(
        value(&samples, "calseg_rbac_changes_applied_total", &[]),
        Some(5.0)
    );
    assert_eq!(
        value(&samples, "calseg_reconcile_errors_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "calseg_reconcile_last_success_timestamp_seconds",
            &[]
        ),
        Some(1_700_000_000.0)
    );
    assert_eq!(
        value(&samples, "calseg_leases_held", &[]),
        None,
        "not set yet"
    );
}

#[test]
fn histogram_buckets_are_cumulative_and_end_at_the_count() {
    let metrics = Metrics::new();
    for seconds in [0.001, 0.007, 0.3, 11.0] {
        metrics.request("/v1/manifest", 200, seconds);
    }
    metrics.request("/v1/manifest", 500, 0.001);
    let samples = parse(&render(&metrics, &[], at(0)));
    let ok = [("route", "/v1/manifest"), ("status", "2xx")];
    let bucket = |le| {
        let mut labels = ok.to_vec();
        labels.push(("le", le));
        value(
            &samples,
            "calseg_http_request_duration_seconds_bucket",
            &labels,
        )
    };
    assert_eq!(bucket("0.005"), Some(1.0));
    assert_eq!(bucket("0.01"), Some(2.0));
    assert_eq!(bucket("0.5"), Some(3.0));
    assert_eq!(bucket("10.0"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(4.0));
    let count = value(&samples, "calseg_http_request_duration_seconds_count", &ok);
    assert_eq!(count, Some(4.0));
    let sum = value(&samples, "calseg_http_request_duration_seconds_sum", &ok).unwrap();
    assert!((sum - 11.308).abs() < 1e-9, "{sum}");
    let errors = [("route", "/v1/manifest"), ("status", "5xx")];
    assert_eq!(
        value(
            &samples,
            "calseg_http_request_duration_seconds_count",
            &errors
        ),
        Some(1.0)
    );
}

#[test]
fn conflicts_and_pending_revocations_are_gauges_that_start_at_zero() {
    let metrics = Metrics::new();
    let samples = parse(&render(&metrics, &[], at(0)));
    assert_eq!(value(&samples, "calseg_rbac_conflicts", &[]), Some(0.0));
    assert_eq!(
        value(&samples, "calseg_revocations_pending", &[]),
        Some(0.0)
    );
    metrics.set_rbac_conflicts(1);
    metrics.set_revocations_pending(2);
    let samples = parse(&render(&metrics, &[], at(0)));
    assert_eq!(value(&samples, "calseg_rbac_conflicts", &[]), Some(1.0));
    assert_eq!(
        value(&samples, "calseg_revocations_pending", &[]),
        Some(2.0)
    );
}

#[test]
fn leases_held_appears_once_set() {
    let metrics = Metrics::new();
    metrics.set_leases_held(3);
    let samples = parse(&render(&metrics, &[], at(0)));
    assert_eq!(value(&samples, "calseg_leases_held", &[]), Some(3.0));
}

fn release(answers: &[(&str, Option<&str>)]) -> ReleaseReport {
    ReleaseReport::from_answers(
        answers
            .iter()
            .map(|(endpoint, version)| {
                let answer = match version {
                    Some(v) => Answer::Version(
                        EtcdVersion::parse(v)
                            .map_or_else(|| Reported::Unknown((*v).to_owned()), Reported::Parsed),
                    ),
                    None => Answer::NoAnswer("connection refused".into()),
                };
                ((*endpoint).to_owned(), answer)
            })
            .collect(),
    )
}

#[test]
fn etcd_gauges_appear_after_the_first_check_and_are_replaced_by_the_next() {
    let metrics = Metrics::new();
    assert!(!render(&metrics, &[], at(0)).contains("calseg_etcd_"));
    metrics.set_etcd_release(&release(&[
        ("https://a:2379", Some("3.4.23")),
        ("https://b:2379", Some("banana")),
        ("https://c:2379", None),
    ]));
    let samples = parse(&render(&metrics, &[], at(0)));
    let info = |endpoint: &str, version: &str| {
        value(
            &samples,
            "calseg_etcd_member_info",
            &[("endpoint", endpoint), ("version", version)],
        )
    };
    assert_eq!(info("https://a:2379", "3.4.23"), Some(1.0));
    assert_eq!(info("https://b:2379", "unknown"), Some(1.0));
    let up = |endpoint| value(&samples, "calseg_etcd_up", &[("endpoint", endpoint)]);
    assert_eq!(up("https://a:2379"), Some(1.0));
    assert_eq!(up("https://b:2379"), Some(1.0));
    assert_eq!(up("https://c:2379"), Some(0.0), "did not answer");
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "calseg_etcd_known_rbac_bypass"
                && l["endpoint"] == "https://a:2379"
                && l["advisory"].starts_with("GHSA-")),
        "{samples:?}"
    );
    // An upgrade: the old series go.
    metrics.set_etcd_release(&release(&[("https://a:2379", Some("3.5.33"))]));
    let text = render(&metrics, &[], at(0));
    let samples = parse(&text);
    assert!(
        !text.contains("3.4.23") && !text.contains("GHSA-") && !text.contains("https://c"),
        "{text}"
    );
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "calseg_etcd_member_info" && l["version"] == "3.5.33")
    );
}

#[test]
#[should_panic(expected = "no TYPE")]
fn the_checker_refuses_a_sample_without_its_family() {
    parse("# HELP a x\n# TYPE a gauge\na 1\nb 2\n");
}

#[test]
fn rollout_progress_renders_as_well_formed_families() {
    use calseg_api::rollout::{RolloutState, RolloutStatus, WaveRollout};
    let status = RolloutStatus {
        policy_revision: Some(3),
        approved: 10,
        converged: 6,
        pending: 3,
        failed: 1,
        unassigned: 0,
        pending_nodes: Vec::new(),
        failed_nodes: Vec::new(),
        history: Vec::new(),
        waves: Some(WaveRollout {
            from_revision: 2,
            to_revision: 3,
            state: RolloutState::Paused,
            opened_waves: 2,
            total_waves: 5,
            created_at: 0,
            waves: Vec::new(),
        }),
        etcd: None,
    };
    let scrape = Scrape {
        rollout: Some(&status),
        process: false,
        ..Scrape::of(&[], at(0))
    };
    let samples = parse(&metrics_text(&scrape));
    let value = |name: &str, label: &str| {
        samples
            .iter()
            .find(|(n, labels, _)| n == name && labels.values().any(|v| v == label))
            .map(|(_, _, value)| *value)
    };
    assert_eq!(value("calseg_rollout_nodes", "failed"), Some(1.0));
    assert_eq!(value("calseg_rollout_waves", "opened"), Some(2.0));
    assert_eq!(value("calseg_rollout_waves", "total"), Some(5.0));
    assert_eq!(value("calseg_rollout_state", "paused"), Some(1.0));
}

#[test]
fn the_cas_and_a_rotation_render_as_well_formed_families() {
    use calseg_api::ca::{
        CaStatus, CaSummary, FleetRotationPhase, FleetRotationStatus, RotationPhase, RotationStatus,
    };
    let status = CaStatus {
        etcd_client: CaSummary {
            fingerprint: "sha256:e".into(),
            not_after: 2_000_000_000,
        },
        fleet: CaSummary {
            fingerprint: "sha256:f".into(),
            not_after: 2_100_000_000,
        },
        rotation: Some(RotationStatus {
            phase: RotationPhase::Reissuing,
            old_fingerprint: "sha256:e".into(),
            new_fingerprint: "sha256:n".into(),
            begun_at: 0,
            begun_by: "admin:a".into(),
            bundle_file: String::new(),
            probes: Vec::new(),
            waves: None,
            old_ca_identities: vec!["a/calico-node (installed certificate)".into(); 3],
            new_ca_here: true,
        }),
        fleet_rotation: Some(FleetRotationStatus {
            phase: FleetRotationPhase::Overlap,
            signing: CaSummary {
                fingerprint: "sha256:g".into(),
                not_after: 2_200_000_000,
            },
            other: CaSummary {
                fingerprint: "sha256:f".into(),
                not_after: 2_100_000_000,
            },
            pending_nodes: vec!["a".into(), "b".into()],
        }),
    };
    let scrape = Scrape {
        ca: Some(&status),
        process: false,
        ..Scrape::of(&[], at(0))
    };
    let samples = parse(&metrics_text(&scrape));
    let value = |name: &str, label: &str| {
        samples
            .iter()
            .find(|(n, labels, _)| n == name && labels.values().any(|v| v == label))
            .map(|(_, _, value)| *value)
    };
    assert_eq!(
        value("calseg_ca_expiry_timestamp_seconds", "fleet"),
        Some(2_100_000_000.0)
    );
    assert_eq!(value("calseg_ca_rotation_phase", "reissuing"), Some(1.0));
    assert_eq!(
        value("calseg_ca_rotation_old_ca_identities", "etcd-client"),
        Some(3.0)
    );
    assert_eq!(value("calseg_ca_rotation_phase", "overlap"), Some(1.0));
    assert_eq!(
        value("calseg_ca_rotation_old_ca_identities", "fleet"),
        Some(2.0)
    );
}

fn metrics_text(scrape: &Scrape) -> String {
    Metrics::new().render(scrape, Format::Text)
}
