//! Issue 17, finding 5: file descriptors could be exhausted without authentication. 1,050
//! idle sockets against a server with 1,024 open files made health, manifests and `nodes list`
//! time out. Here the real server runs with its open-file limit lowered to 256 (`prlimit`) and
//! short timeouts; a bounded burst of idle sockets (the fd limit plus 50, loopback, all closed
//! at the end) must not keep health, an enrolled node's manifest or `nodes list` from
//! answering, the server logs its cap and counts refusals, every idle socket is closed by the
//! server, and a half-sent TLS ClientHello or HTTP header is cut at its timeout, while a
//! parked manifest long-poll outlives the idle timeout.

use calseg_api::paths;
use calseg_tests::api_client::{TestNode, https_client};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's open-file limit.
const OPEN_FILES: u64 = 256;
/// The cap the server derives from it: an eighth, at least 128, is kept for other files.
const CAP: usize = 128;
/// Idle sockets of the burst: more than the server could hold open at all.
const BURST: usize = OPEN_FILES as usize + 50;
/// `[api] handshake_timeout`, `header_read_timeout` (seconds) and `idle_timeout`.
const HANDSHAKE: u64 = 3;
const HEADER: u64 = 3;
const IDLE: u64 = 5;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
[[hosts]]
match = "auto-*"
components = ["calico-node"]
"#
    )
}

async fn setup() -> (EtcdCluster, ServerProcess, TestNode) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let api = format!(
        "auto_approve = [\"auto-*\"]\nhandshake_timeout = \"{HANDSHAKE}s\"\n\
         header_read_timeout = \"{HEADER}s\"\nidle_timeout = \"{IDLE}s\""
    );
    let nofile = format!("--nofile={OPEN_FILES}:{OPEN_FILES}");
    let server = ServerProcess::start_wrapped(
        &etcd,
        &policy(&etcd.endpoint(0)),
        &api,
        &["prlimit", &nofile, "--"],
    )
    .await
    .expect("server");
    let mut node = TestNode::new("auto-1", &server.url(), &server.fleet_ca_pem()).expect("node");
    let enrolled = node.enroll(None).await.expect("enroll");
    assert_eq!(enrolled.status, StatusCode::OK, "{enrolled:?}");
    (etcd, server, node)
}

/// GET /v1/health on a new connection without a client certificate, retried for up to
/// `within`: how long it took to answer 200.
async fn health_answers(server: &ServerProcess, within: Duration) -> Duration {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < within {
        let client = https_client(&server.fleet_ca_pem(), None).expect("client");
        match client
            .get(format!("{}{}", server.url(), paths::HEALTH))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(response) if response.status() == StatusCode::OK => return started.elapsed(),
            Ok(response) => last = format!("{}", response.status()),
            Err(error) => last = format!("{error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("health did not answer within {within:?}: {last}");
}

/// Waits until the server closes `socket` (EOF or reset); how long that took, or `None`
/// after `within`.
async fn closed_within(mut socket: TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout_at((started + within).into(), socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// The value of the unlabelled sample `name` (or `name{labels}`) in a scrape.
fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the scrape:\n{scrape}"))
}

#[tokio::test]
async fn a_burst_of_idle_sockets_past_the_fd_limit_leaves_health_manifests_and_admin_working() {
    let (_etcd, server, node) = setup().await;
    let log = server.log();
    assert!(
        log.contains(&format!("at most {CAP} connections")),
        "the server did not log its cap:\n{log}"
    );
    let mut burst = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        burst.push(
            TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .expect("connect"),
        );
    }
    // The burst is older than a second now: the server may close its sockets to make room.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waited = health_answers(&server, Duration::from_secs(HANDSHAKE + 10)).await;
    eprintln!("health answered {waited:?} into the burst of {BURST} idle sockets");
    let manifest = node.manifest(None).await.expect("manifest");
    assert_eq!(manifest.status, StatusCode::OK, "{manifest:?}");
    let listed = server.cli_ok(&["nodes", "list"]).expect("nodes list");
    assert!(listed.contains("auto-1"), "{listed}");

    // Every idle socket is closed by the server: refused at once, closed to make room, or cut
    // at the handshake timeout.
    let closing: Vec<_> = burst
        .into_iter()
        .map(|socket| tokio::spawn(closed_within(socket, Duration::from_secs(HANDSHAKE + 10))))
        .collect();
    let mut open = 0;
    for closed in closing {
        if closed.await.expect("join").is_none() {
            open += 1;
        }
    }
    assert_eq!(open, 0, "{open} of {BURST} idle sockets were still open");

    let log = server.log();
    assert!(
        log.contains("connection limit reached"),
        "no warning about the cap:\n{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    let scrape = server.scrape().await.expect("scrape");
    assert_eq!(sample(&scrape, "calseg_api_connections_limit"), CAP as f64);
    assert!(
        sample(&scrape, "calseg_api_connections_refused_total") > 0.0,
        "{scrape}"
    );
    assert!(
        sample(
            &scrape,
            "calseg_api_connections_closed_total{reason=\"handshake_timeout\"}"
        ) > 0.0,
        "{scrape}"
    );
    assert!(
        sample(&scrape, "calseg_api_connections_open") < CAP as f64,
        "{scrape}"
    );
}

#[tokio::test]
async fn half_sent_client_hellos_and_headers_are_cut_but_a_long_poll_outlives_the_idle_timeout() {
    let (_etcd, server, node) = setup().await;
    let server = Arc::new(server);

    // A TLS record header announcing 512 bytes of ClientHello, and 4 of them.
    let mut hello = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("connect");
    hello
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .await
        .expect("write");
    let cut = closed_within(hello, Duration::from_secs(HANDSHAKE + 10))
        .await
        .expect("a half-sent ClientHello kept its connection");
    assert!(
        cut >= Duration::from_secs(HANDSHAKE - 1),
        "closed after {cut:?}: not by the handshake timeout"
    );

    // A finished handshake, then a request line and one header, and nothing more.
    let ca = server.fleet_ca_pem();
    let port = server.port();
    let header_cut = tokio::task::spawn_blocking(move || half_sent_header(&ca, port))
        .await
        .expect("join");
    assert!(
        header_cut >= Duration::from_secs(HEADER - 1)
            && header_cut < Duration::from_secs(HEADER + 10),
        "a half-sent header was cut after {header_cut:?}"
    );

    // A manifest long-poll parked longer than the idle timeout is answered, not cut.
    let first = node.manifest(None).await.expect("manifest");
    let etag = first.etag.clone().expect("an ETag");
    let started = Instant::now();
    let (parked, _) = node
        .manifest_wait(&etag, IDLE + 3)
        .await
        .expect("the long-poll was cut");
    assert_eq!(parked.status, StatusCode::NOT_MODIFIED, "{parked:?}");
    assert!(started.elapsed() >= Duration::from_secs(IDLE + 2));
    let scrape = server.scrape().await.expect("scrape");
    assert!(
        sample(
            &scrape,
            "calseg_api_connections_closed_total{reason=\"handshake_timeout\"}"
        ) >= 1.0,
        "{scrape}"
    );
}

/// Opens a TLS connection (no client certificate) to 127.0.0.1:`port`, sends a request line
/// and one header without the blank line that ends them, and returns how long the server
/// took to close it after that.
fn half_sent_header(ca_pem: &str, port: u16) -> Duration {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.expect("CA PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(HEADER + 15)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(b"GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .expect("write");
    tls.flush().expect("flush");
    let sent = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return sent.elapsed(),
            Ok(n) => {
                // hyper answers a timed-out header read with 408 before closing, or nothing.
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    !text.contains("200 OK"),
                    "answered a half-sent header: {text}"
                );
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "the half-sent header's connection was still open after {:?}",
                    sent.elapsed()
                )
            }
            Err(_) => return sent.elapsed(),
        }
    }
}
