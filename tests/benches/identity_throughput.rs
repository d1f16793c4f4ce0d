//! Benchmark: CSR signings/s and manifest pulls/s through the real calseg-server over kept-alive
//! mutual-TLS connections, each beside its limit measured in the same run: a bare signing loop
//! with the same crypto, and a minimal axum+rustls endpoint (the same TLS stack, a static body).
//!
//! Run: `cargo build --release --bins && cargo bench -p calseg-tests --bench identity_throughput`.
//! BENCH_REQUESTS (default 2000) and BENCH_CONCURRENCY (default 8) size the load; loopback only.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use calseg_server::pki::{CaKind, CertificateAuthority, CsrRules};
use calseg_tests::api_client::{TestNode, https_client, key_and_csr};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY: &str = r#"calico_version = "3.29"
[etcd]
endpoints = ["ENDPOINT"]
[components.calico-node]
grants = "calico-node"
extra_grants = [ { prefix = "/calico/resources/v3/projectcalico.org/tiers/", access = "readwrite" } ]
[components.cni-plugin]
grants = "cni-plugin"
[components.calicoctl-ro]
grants = "calicoctl-read-only"
[[hosts]]
name = "bench-node"
components = ["calico-node", "cni-plugin", "calicoctl-ro"]
"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `count` calls of `call` with `concurrency` in flight; returns calls per second.
async fn rate<F, Fut>(count: usize, concurrency: usize, call: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let ok = futures::stream::iter(0..count)
        .map(call)
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(ok, count, "some calls failed");
    count as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let requests = env_usize("BENCH_REQUESTS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &POLICY.replace("ENDPOINT", &etcd.endpoint(0)), "")
        .await
        .expect("server");
    println!(
        "calseg-server binary: {}",
        calseg_tests::bins::path("calseg-server").display()
    );
    let mut node =
        TestNode::new("bench-node", &server.url(), &server.fleet_ca_pem()).expect("node");
    let token = server.token_for("bench-node", "1h").expect("token");
    node.enroll(Some(&token)).await.expect("enroll");
    let node = Arc::new(node);
    let csrs: Arc<Vec<String>> = Arc::new(
        (0..requests)
            .map(|_| key_and_csr("calico-node.bench-node").expect("csr").1)
            .collect(),
    );

    // Limit 1: signing with the same crypto, no network, one core.
    let ca = CertificateAuthority::generate(
        CaKind::EtcdClient,
        "bench",
        Duration::from_secs(86_400 * 365),
        time::OffsetDateTime::now_utc(),
    )
    .expect("ca");
    let rules = CsrRules::default();
    let started = Instant::now();
    for csr in csrs.iter() {
        ca.sign_client_csr(
            csr,
            &rules,
            "calico-node.bench-node",
            Duration::from_secs(86_400),
            time::OffsetDateTime::now_utc(),
        )
        .expect("sign");
    }
    let bare = requests as f64 / started.elapsed().as_secs_f64();

    let client = node.client().expect("client");
    let url = format!("{}{}", server.url(), calseg_api::paths::CERTIFICATES);
    let signed = rate(requests, concurrency, |i| {
        let (client, url, csrs) = (client.clone(), url.clone(), Arc::clone(&csrs));
        async move {
            let body = calseg_api::certificates::SignRequest {
                component: "calico-node".into(),
                csr_pem: csrs[i].clone(),
            };
            client
                .post(&url)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    let manifest_url = format!("{}{}", server.url(), calseg_api::paths::MANIFEST);
    let first = client.get(&manifest_url).send().await.expect("manifest");
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("etag");
    let manifest_body = first.bytes().await.expect("body");
    let pulls = rate(requests, concurrency, |_| {
        let (client, url) = (client.clone(), manifest_url.clone());
        async move {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let not_modified = rate(requests, concurrency, |_| {
        let (client, url, etag) = (client.clone(), manifest_url.clone(), etag.clone());
        async move {
            client
                .get(&url)
                .header("if-none-match", etag)
                .send()
                .await
                .is_ok_and(|r| r.status() == 304)
        }
    })
    .await;

    // Limit 2: the same TLS stack (calseg's rustls config, mTLS) serving a static body.
    let fleet = CertificateAuthority::generate(
        CaKind::Fleet,
        "bench fleet",
        Duration::from_secs(86_400),
        time::OffsetDateTime::now_utc(),
    )
    .expect("ca");
    let server_cert = fleet
        .issue_server(
            &["127.0.0.1".into()],
            Duration::from_secs(86_400),
            time::OffsetDateTime::now_utc(),
        )
        .expect("cert");
    let tls = calseg_server::http::tls::server_config(
        &server_cert.cert_pem,
        &server_cert.key_pem,
        fleet.cert_pem(),
    )
    .expect("tls");
    let (agent_key, agent_csr) = key_and_csr("bench-node").expect("csr");
    let agent = fleet
        .sign_agent_csr(
            &agent_csr,
            &rules,
            "bench-node",
            Duration::from_secs(86_400),
            time::OffsetDateTime::now_utc(),
        )
        .expect("sign");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = manifest_body.clone();
    let router = axum::Router::new().route(
        "/static",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(calseg_server::http::serve(listener, tls, router, async {
        let _ = stopped.await;
    }));
    let raw_client =
        https_client(fleet.cert_pem(), Some((&agent.cert_pem, &agent_key))).expect("client");
    let raw_url = format!("https://127.0.0.1:{port}/static");
    let raw = rate(requests, concurrency, |_| {
        let (client, url) = (raw_client.clone(), raw_url.clone());
        async move {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let _ = stop.send(());

    println!(
        "{requests} requests, {concurrency} in flight, kept-alive mTLS over loopback, 2 cores shared by client and server"
    );
    println!(
        "CSR signing: calseg-server {signed:>8.0}/s | bare signing loop {bare:>8.0}/s | ratio {:.2}",
        signed / bare
    );
    println!(
        "manifest pull (200, {} bytes): calseg-server {pulls:>8.0}/s | minimal axum+rustls {raw:>8.0}/s | ratio {:.2}",
        manifest_body.len(),
        pulls / raw
    );
    println!(
        "manifest pull (304 If-None-Match): calseg-server {not_modified:>8.0}/s | ratio to minimal {:.2}",
        not_modified / raw
    );
}
