//! Issue 18 point 6: both formats, `promtool check metrics` on a scrape with every family,
//! the identity expiry series, build info, process metrics, reloads and long-polls.

use super::expiry::{Expiry, latest_per_component};
use super::process::{parse_btime, parse_max_fds, parse_rss, parse_stat};
use super::tests::{at, node, parse, render, report_expiring, value};
use super::*;
use crate::store::{FleetCert, IssuedRecord, NodeState};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text`; panics with its findings, or with what to install.
pub(super) fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|error| {
        panic!(
            "promtool is needed to check the metrics ({error}): install Debian's prometheus \
             package (apt-get install --no-install-recommends prometheus), or run \
             scripts/prereqs.sh"
        )
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metrics with every family populated, and a scrape with every scrape-time family.
fn everything() -> Metrics {
    let metrics = Metrics::new();
    metrics.issued(IssuedKind::Component);
    metrics.denied("odd \"kind\"\\\n");
    metrics.request("/v1/manifest", 200, 0.003);
    metrics.long_poll("/v1/manifest", 304, Duration::from_secs(30));
    metrics.reconciled(2, 2, at(1_700_000_000));
    metrics.reconcile_failed();
    metrics.set_leases_held(1);
    metrics.set_leader(true);
    metrics.record_reload(false);
    metrics.connections.closed(Closed::Idle);
    metrics.connections.refused();
    metrics.set_etcd_release(&crate::etcd_release::ReleaseReport::from_answers(vec![(
        "https://a:2379".into(),
        crate::etcd_release::Answer::NoAnswer("refused".into()),
    )]));
    metrics
}

fn expiries() -> Vec<Expiry> {
    vec![
        Expiry {
            node: "a".into(),
            component: "calico-node".into(),
            not_after: 1_800_000_000,
        },
        Expiry {
            node: "a".into(),
            component: "fleet".into(),
            not_after: 1_900_000_000,
        },
    ]
}

#[test]
fn a_full_scrape_passes_promtool_check_metrics() {
    let metrics = everything();
    let nodes = [node(
        "a",
        NodeState::Approved,
        Some(report_expiring("1970-01-12T13:46:40Z")),
    )];
    let expiries = expiries();
    let status = calseg_api::rollout::RolloutStatus {
        policy_revision: Some(3),
        approved: 1,
        converged: 1,
        pending: 0,
        failed: 0,
        unassigned: 0,
        pending_nodes: Vec::new(),
        failed_nodes: Vec::new(),
        history: Vec::new(),
        waves: None,
        etcd: None,
    };
    let scrape = Scrape {
        expiries: &expiries,
        rollout: Some(&status),
        ..Scrape::of(&nodes, at(1_000_000))
    };
    let text = metrics.render(&scrape, Format::Text);
    for family in [
        "calseg_build_info",
        "calseg_certificate_expiration_timestamp_seconds",
        "calseg_http_long_polls_total",
        "calseg_reload_last_success",
        "calseg_etcd_up",
        "calseg_policy_revision",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(&format!("\n{family}")), "{family}: {text}");
    }
    parse(&text);
    promtool_check(&text);
}

#[test]
fn openmetrics_is_what_prometheus_asks_for_and_text_is_the_rest() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                      version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
    assert_eq!(Format::negotiate(None), Format::Text);
    let metrics = everything();
    let scrape = Scrape {
        process: false,
        ..Scrape::of(&[], at(0))
    };
    let open = metrics.render(&scrape, Format::OpenMetrics);
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE calseg_certificates_issued counter\n")
            && open.contains("calseg_certificates_issued_total{kind=\"component\"} 1\n"),
        "{open}"
    );
    let text = metrics.render(&scrape, Format::Text);
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# HELP calseg_certificates_issued_total ")
            && text.contains("# TYPE calseg_certificates_issued_total counter\n"),
        "{text}"
    );
    // The same scrape, converted (a family's series come in no set order).
    let sorted = |t: &str| {
        let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&text), sorted(&text_of(&open)));
    // A label value with a quote, a backslash and a newline stays one well-formed line.
    assert!(
        text.contains(r#"calseg_requests_denied_total{kind="odd \"kind\"\\\n"} 1"#),
        "{text}"
    );
}

#[test]
fn each_identity_has_its_expiry_and_build_info_says_the_version() {
    let metrics = Metrics::new();
    let expiries = expiries();
    let scrape = Scrape {
        expiries: &expiries,
        process: false,
        ..Scrape::of(&[], at(0))
    };
    let samples = parse(&metrics.render(&scrape, Format::Text));
    let expiry = |component| {
        value(
            &samples,
            "calseg_certificate_expiration_timestamp_seconds",
            &[("node", "a"), ("component", component)],
        )
    };
    assert_eq!(expiry("calico-node"), Some(1_800_000_000.0));
    assert_eq!(expiry("fleet"), Some(1_900_000_000.0));
    assert_eq!(
        value(
            &samples,
            "calseg_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}

fn issued(component: &str, issued_at: i64, not_after: i64) -> IssuedRecord {
    IssuedRecord {
        serial: format!("{issued_at:x}"),
        cn: format!("{component}.a"),
        node: "a".into(),
        component: component.into(),
        not_before: at(issued_at),
        not_after: at(not_after),
        issued_at: at(issued_at),
        issuer: None,
    }
}

#[test]
fn the_expiry_is_the_latest_issued_certificate_of_each_component() {
    let latest = latest_per_component(vec![
        issued("calico-node", 200, 900),
        issued("calico-node", 100, 1_000),
        issued("felix", 50, 500),
        // The fleet certificate comes from the node record, not from here.
        issued("fleet", 300, 5_000),
    ]);
    let got: Vec<(&str, i64)> = latest
        .iter()
        .map(|e| (e.component.as_str(), e.not_after))
        .collect();
    assert_eq!(got, [("calico-node", 900), ("felix", 500)]);
}

#[test]
fn only_approved_nodes_have_expiry_series_and_the_fleet_certificate_is_one() {
    let mut approved = node("a", NodeState::Approved, None);
    approved.fleet_cert = Some(FleetCert {
        serial: "01".into(),
        not_after: at(7_000),
        key_fingerprint: None,
        issuer: None,
    });
    let mut revoked = node("r", NodeState::Revoked, None);
    revoked.fleet_cert = approved.fleet_cert.clone();
    let pending = node("p", NodeState::Pending, None);
    let live = super::live_identities(&[revoked, approved, pending], |n| {
        assert_eq!(n, "a", "only the approved node's records are read");
        Ok(vec![issued("calico-node", 100, 1_000)])
    })
    .unwrap();
    let got: Vec<(&str, &str, i64)> = live
        .iter()
        .map(|e| (e.node.as_str(), e.component.as_str(), e.not_after))
        .collect();
    assert_eq!(got, [("a", "calico-node", 1_000), ("a", "fleet", 7_000)]);
}

#[test]
fn a_reload_sets_the_result_and_the_time_and_the_start_counts_as_one() {
    let metrics = Metrics::new();
    let before = OffsetDateTime::now_utc().unix_timestamp() as f64;
    let samples = parse(&render(&metrics, &[], at(0)));
    assert_eq!(
        value(&samples, "calseg_reload_last_success", &[]),
        Some(1.0)
    );
    let started = value(&samples, "calseg_reload_last_timestamp_seconds", &[]).unwrap();
    assert!((started - before).abs() <= 1.0, "{started} vs {before}");
    metrics.record_reload(false);
    let samples = parse(&render(&metrics, &[], at(0)));
    assert_eq!(
        value(&samples, "calseg_reload_last_success", &[]),
        Some(0.0)
    );
}

#[test]
fn a_long_poll_counts_apart_and_its_wait_is_not_latency() {
    let metrics = Metrics::new();
    metrics.long_poll("/v1/manifest", 304, Duration::from_secs(30));
    metrics.long_poll("/v1/manifest", 200, Duration::from_millis(1500));
    let samples = parse(&render(&metrics, &[], at(0)));
    let polls = |status| {
        value(
            &samples,
            "calseg_http_long_polls_total",
            &[("route", "/v1/manifest"), ("status", status)],
        )
    };
    assert_eq!((polls("3xx"), polls("2xx")), (Some(1.0), Some(1.0)));
    assert_eq!(
        value(
            &samples,
            "calseg_http_long_poll_wait_seconds_total",
            &[("route", "/v1/manifest")]
        ),
        Some(31.5)
    );
}

#[test]
fn process_metrics_read_proc() {
    // Field 2 holds a space and a ')'; utime 150 + stime 50 ticks, started 1000 ticks after boot.
    let stat = "42 (calseg) x) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 4 0 1000 \
                123456789 2000 18446744073709551615";
    let parsed = parse_stat(stat, 1_700_000_000).unwrap();
    assert_eq!(parsed.cpu_seconds, 2.0);
    assert_eq!(parsed.start_time, 1_700_000_010.0);
    assert_eq!(parsed.virtual_bytes, 123_456_789);
    assert_eq!(
        parse_btime("cpu 1 2 3\nbtime 1700000000\n"),
        Some(1_700_000_000)
    );
    assert_eq!(
        parse_rss("Name:\tx\nVmRSS:\t    2048 kB\n"),
        Some(2 * 1024 * 1024)
    );
    let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                  Max open files            1024                 524288               files\n";
    assert_eq!(parse_max_fds(limits), Some(1024));
    // And this process's own, read for real.
    let text = Metrics::new().render(&Scrape::of(&[], at(0)), Format::Text);
    let samples = parse(&text);
    let now = OffsetDateTime::now_utc().unix_timestamp() as f64;
    let started = value(&samples, "process_start_time_seconds", &[]).unwrap();
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started}"
    );
    assert!(value(&samples, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&samples, "process_open_fds", &[]).unwrap() >= 3.0);
    assert!(value(&samples, "process_max_fds", &[]).unwrap() >= 3.0);
    assert!(value(&samples, "process_cpu_seconds_total", &[]).is_some());
}

/// What to install for the OpenMetrics check.
const PYTHON_PARSER: &str = "Debian's python3-prometheus-client (apt-get install \
    --no-install-recommends python3-prometheus-client), or run scripts/prereqs.sh";

/// Parses `text` with the Prometheus Python client's OpenMetrics parser (strict: EOF, names,
/// types, escapes); panics with its error, or with what to install.
fn openmetrics_parse(text: &str) {
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
        print(len(list(p(sys.stdin.read()))))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is needed ({e}): install {PYTHON_PARSER}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "the OpenMetrics parser is missing: install {PYTHON_PARSER}"
    );
    assert!(out.status.success(), "not OpenMetrics: {stderr}\n{text}");
}

#[test]
fn the_openmetrics_scrape_passes_the_strict_openmetrics_parser() {
    let metrics = everything();
    let nodes = [node(
        "a",
        NodeState::Approved,
        Some(report_expiring("1970-01-12T13:46:40Z")),
    )];
    let expiries = expiries();
    let scrape = Scrape {
        expiries: &expiries,
        ..Scrape::of(&nodes, at(1_000_000))
    };
    openmetrics_parse(&metrics.render(&scrape, Format::OpenMetrics));
}

#[test]
#[should_panic(expected = "not OpenMetrics")]
fn the_openmetrics_check_refuses_text_without_eof() {
    openmetrics_parse("# TYPE a gauge\na 1\n");
}
