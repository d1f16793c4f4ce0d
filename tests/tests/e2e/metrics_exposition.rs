//! Issue 18 point 6 end to end: the real server's scrape passes `promtool check metrics`, shows
//! each live identity's certificate expiry (the certificate's own notAfter; gone on revoke),
//! build info, process metrics, etcd reachability and the reload result, answers OpenMetrics
//! (that the strict OpenMetrics parser accepts) when asked, and keeps long-poll waits out of the request-latency histogram.

use crate::metrics::{enrolled, policy, sample};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::promtool::{check_metrics, check_openmetrics};
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::time::Duration;
use time::OffsetDateTime;

/// What Prometheus sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The notAfter of the PEM certificate `pem`, in unix seconds.
fn not_after(pem: &str) -> f64 {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let cert = pem.parse_x509().expect("certificate");
    cert.validity().not_after.timestamp() as f64
}

fn expiry(scrape: &str, node: &str, component: &str) -> Option<f64> {
    sample(
        scrape,
        &format!(
            "calseg_certificate_expiration_timestamp_seconds{{node=\"{node}\",component=\"{component}\"}}"
        ),
    )
}

#[tokio::test]
async fn the_scrape_passes_promtool_with_identity_expiries_build_process_and_etcd_gauges() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let mut signed = Vec::new();
    for name in ["node1", "node2"] {
        let node = enrolled(&server, name).await;
        let (answer, _) = node
            .sign("calico-node", &format!("calico-node.{name}"))
            .await
            .expect("sign");
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let cert = answer.body["cert_pem"].as_str().expect("cert_pem");
        let fleet = node.cert_pem.as_deref().expect("fleet certificate");
        signed.push((name, not_after(cert), not_after(fleet)));
    }

    let scrape = server.scrape().await.expect("scrape");
    check_metrics(&scrape).unwrap_or_else(|e| panic!("{e:#}\n{scrape}"));
    for (name, component, fleet) in &signed {
        assert_eq!(
            expiry(&scrape, name, "calico-node"),
            Some(*component),
            "{scrape}"
        );
        assert_eq!(expiry(&scrape, name, "fleet"), Some(*fleet), "{scrape}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &scrape,
            &format!("calseg_build_info{{version=\"{version}\"}}")
        ),
        Some(1.0),
        "{scrape}"
    );
    let now = OffsetDateTime::now_utc().unix_timestamp() as f64;
    let started = sample(&scrape, "process_start_time_seconds").expect("start time");
    // btime is whole seconds and the boot clock drifts from the wall clock (as for every
    // Prometheus client): the start time may read a few seconds late.
    assert!(
        started <= now + 5.0 && started > now - 600.0,
        "{started} {now}"
    );
    let open = sample(&scrape, "process_open_fds").expect("open fds");
    let max = sample(&scrape, "process_max_fds").expect("max fds");
    assert!(open > 0.0 && max >= open, "{open} {max}");
    assert!(sample(&scrape, "process_resident_memory_bytes").expect("rss") > 1e6);
    assert!(sample(&scrape, "process_cpu_seconds_total").expect("cpu") >= 0.0);
    assert_eq!(
        sample(
            &scrape,
            &format!("calseg_etcd_up{{endpoint=\"{}\"}}", etcd.endpoint(0))
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "calseg_reload_last_success"), Some(1.0));

    // Prometheus asks for OpenMetrics and gets it: counters typed without `_total`, an EOF.
    let (content_type, open_metrics) = server
        .scrape_accepting(Some(PROMETHEUS_ACCEPT))
        .await
        .expect("scrape");
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(open_metrics.ends_with("\n# EOF\n"), "{open_metrics}");
    check_openmetrics(&open_metrics).unwrap_or_else(|e| panic!("{e:#}\n{open_metrics}"));
    assert!(
        open_metrics.contains("# TYPE calseg_certificates_issued counter\n"),
        "{open_metrics}"
    );

    // A revoked node's series go; the other's stay.
    let out = server.cli(&["nodes", "revoke", "node2"]).expect("revoke");
    assert!(out.status.success(), "{out:?}");
    let scrape = server.scrape().await.expect("scrape");
    assert!(!scrape.contains("node=\"node2\""), "{scrape}");
    assert_eq!(expiry(&scrape, "node1", "calico-node"), Some(signed[0].1));
    check_metrics(&scrape).unwrap_or_else(|e| panic!("{e:#}\n{scrape}"));
}

#[tokio::test]
async fn long_poll_waits_stay_out_of_the_latency_histogram_and_are_counted_apart() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let node = enrolled(&server, "node1").await;
    let first = node.manifest(None).await.expect("manifest");
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let etag = first.etag.expect("etag");
    for _ in 0..3 {
        let (answer, _) = node.manifest_wait(&etag, 2).await.expect("long-poll");
        assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{answer:?}");
    }
    let scrape = server.scrape().await.expect("scrape");
    let labels = r#"route="/v1/manifest",status="3xx""#;
    let value = |series: String| sample(&scrape, &series);
    assert_eq!(
        value(format!("calseg_http_long_polls_total{{{labels}}}")),
        Some(3.0),
        "{scrape}"
    );
    let waited = value(r#"calseg_http_long_poll_wait_seconds_total{route="/v1/manifest"}"#.into())
        .expect("wait seconds");
    assert!((6.0..9.0).contains(&waited), "{waited}: {scrape}");
    // Each long-poll is a request, timed until it parked: 6 s of waiting are not latency.
    assert_eq!(
        value(format!(
            "calseg_http_request_duration_seconds_count{{{labels}}}"
        )),
        Some(3.0),
        "{scrape}"
    );
    let sum = value(format!(
        "calseg_http_request_duration_seconds_sum{{{labels}}}"
    ))
    .expect("latency sum");
    assert!(
        sum < 1.0,
        "long-poll waits in the latency histogram: {sum}\n{scrape}"
    );
    let fast = value(format!(
        "calseg_http_request_duration_seconds_bucket{{le=\"0.5\",{labels}}}"
    ));
    assert_eq!(fast, Some(3.0), "{scrape}");
}

#[tokio::test]
async fn a_refused_reload_shows_in_the_reload_gauges_and_a_good_one_clears_it() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let scrape = server.scrape().await.expect("scrape");
    let started = sample(&scrape, "calseg_reload_last_timestamp_seconds").expect("timestamp");
    assert_eq!(sample(&scrape, "calseg_reload_last_success"), Some(1.0));
    let good = std::fs::read_to_string(server.policy_path()).expect("policy");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (text, want) in [("calico_version = ", 0.0), (good.as_str(), 1.0)] {
        std::fs::write(server.policy_path(), text).expect("write policy");
        server.reload().expect("SIGHUP");
        let mut scrape = String::new();
        for _ in 0..50 {
            scrape = server.scrape().await.expect("scrape");
            if sample(&scrape, "calseg_reload_last_success") == Some(want)
                && sample(&scrape, "calseg_reload_last_timestamp_seconds") > Some(started)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            sample(&scrape, "calseg_reload_last_success"),
            Some(want),
            "{scrape}\n{}",
            server.log()
        );
    }
}

/// The scrape once a reconcile pass has succeeded, polling up to 40 s.
async fn wait_reconciled(server: &ServerProcess) -> String {
    let mut scrape = String::new();
    for _ in 0..200 {
        scrape = server.scrape().await.expect("scrape");
        let done = sample(&scrape, "calseg_reconcile_last_success_timestamp_seconds");
        if done.is_some_and(|t| t > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scrape
}

/// The value of `calseg_etcd_up` for `endpoint` once it equals `want`, polling up to 40 s.
async fn wait_etcd_up(server: &ServerProcess, endpoint: &str, want: f64) -> String {
    let series = format!("calseg_etcd_up{{endpoint=\"{endpoint}\"}}");
    let mut scrape = String::new();
    for _ in 0..200 {
        scrape = server.scrape().await.expect("scrape");
        if sample(&scrape, &series) == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scrape
}

#[tokio::test]
async fn etcd_up_follows_an_etcd_outage_within_seconds_not_at_the_next_release_check() {
    let mut etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let endpoint = etcd.endpoint(0);
    let series = format!("calseg_etcd_up{{endpoint=\"{endpoint}\"}}");
    let scrape = wait_etcd_up(&server, &endpoint, 1.0).await;
    assert_eq!(sample(&scrape, &series), Some(1.0), "{scrape}");
    // The first pass applies the policy's users and roles; an etcd stopped under that apply
    // makes it wait (up to a minute per change) rather than fail. Stop etcd once it is done, so
    // the next pass (2 s later, nothing to change) is the one that fails.
    let scrape = wait_reconciled(&server).await;
    let done = sample(&scrape, "calseg_reconcile_last_success_timestamp_seconds");
    assert!(done.is_some_and(|t| t > 0.0), "{scrape}");
    // The release check is due again in 10 minutes; a failing reconcile asks at once.
    etcd.stop_member(0);
    let scrape = wait_etcd_up(&server, &endpoint, 0.0).await;
    assert_eq!(
        sample(&scrape, &series),
        Some(0.0),
        "{scrape}\n{}",
        server.log()
    );
    etcd.start_member(0).await.expect("restart etcd");
    let scrape = wait_etcd_up(&server, &endpoint, 1.0).await;
    assert_eq!(
        sample(&scrape, &series),
        Some(1.0),
        "{scrape}\n{}",
        server.log()
    );
}
