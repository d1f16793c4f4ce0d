//! CSR signings/s and manifest pulls/s through the real calseg-server over kept-alive
//! mutual-TLS connections, each beside its limit measured in the same run: a bare signing loop
//! with the same crypto, and a minimal axum+rustls endpoint (calseg's TLS config, a static
//! body). Then where a signing's time goes: the signature, and the one store commit the server
//! makes per signing (issued record and audit entry in one transaction), timed on a redb store
//! in the server's own state directory (same filesystem, same fsync).

use super::rate;
use crate::api_client::{TestNode, https_client, key_and_csr};
use crate::etcd::EtcdCluster;
use crate::server::ServerProcess;
use anyhow::{Context, Result};
use calseg_server::pki::{CaKind, CertificateAuthority, CsrRules};
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

/// Per-signing time of each phase of the server's signing handler, measured sequentially.
#[derive(Debug, Clone, Copy)]
pub struct SigningPhases {
    pub samples: usize,
    /// `sign_client_csr`: parse and check the CSR, sign.
    pub sign: Duration,
    /// `record_issued_audited`: the issued record and its audit entry, one redb write
    /// transaction, fsync'd.
    pub commit: Duration,
    /// The signing guard's question to etcd: who owns the user (one `user_get`).
    pub owner_check: Duration,
}

impl SigningPhases {
    /// Sum of the phases: one signing done serially.
    pub fn total(&self) -> Duration {
        self.sign + self.commit
    }
}

/// Per-request time of what the server's manifest route does beyond a static endpoint,
/// measured sequentially in-process with the server's own code.
#[derive(Debug, Clone, Copy)]
pub struct ManifestPhases {
    pub samples: usize,
    /// The caller's standing read from a redb store (`Store::node_standing`), as `authorize` does.
    pub node_read: Duration,
    /// A round trip to tokio's blocking pool: what a store read costs on top when the store's
    /// reads may block (etcd); the embedded store is read inline.
    pub blocking_hop: Duration,
    /// The manifest computed from the policy (`manifest_for`) and serialized to JSON: what a
    /// pull costs when the cache misses (first pull after a policy change).
    pub compute: Duration,
    /// The manifest served from `calseg_control::manifest_cache` (a hit: every other pull).
    pub cached: Duration,
}

impl ManifestPhases {
    /// The route's own work with the embedded store (read inline) and a cache hit.
    pub fn total(&self) -> Duration {
        self.node_read + self.cached
    }
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct IdentityResult {
    pub requests: usize,
    pub concurrency: usize,
    /// Signings/s through the server, and of the bare loop.
    pub signed: f64,
    pub bare: f64,
    /// Manifest pulls/s: 200 with body, 304, and the minimal endpoint.
    pub pulls: f64,
    pub not_modified: f64,
    pub minimal: f64,
    /// `GET /v1/health` through the server: every route's middleware, no route work.
    pub health: f64,
    pub manifest_bytes: usize,
    /// Manifest pulls made for each rate (more than signings: a pull is far cheaper, and a
    /// short run is noise).
    pub pull_requests: usize,
    pub phases: SigningPhases,
    pub manifest_phases: ManifestPhases,
    /// Component certificates issued per store commit during the signing run (group commit),
    /// from the server's metrics.
    pub signings_per_commit: f64,
}

/// Manifest pulls per signing request: enough for a pull rate measured over about a second.
const PULLS_PER_SIGNING: usize = 10;

fn day() -> Duration {
    Duration::from_secs(86_400)
}

/// Times each phase of a signing `samples` times on a store next to the server's.
fn phases(dir: &std::path::Path, csrs: &[String], samples: usize) -> Result<SigningPhases> {
    use calseg_server::store::{
        AuditAction, AuditOutcome, IssuedRecord, NewAuditEntry, RedbStore, Store,
    };
    let now = time::OffsetDateTime::now_utc;
    let ca = CertificateAuthority::generate(CaKind::EtcdClient, "phases", day(), now())?;
    let store = RedbStore::open(&dir.join("bench-phases.redb"))?;
    let rules = CsrRules::default();
    // The issued record belongs to a known node, as on the server.
    let first = csrs.first().context("no CSRs to sign")?;
    store.upsert_pending_node(
        "bench-node",
        &calseg_testkit::store_conformance::ask(first, "sha256:bench"),
        now(),
    )?;
    let (mut sign, mut commit) = (Duration::ZERO, Duration::ZERO);
    let samples = samples.min(csrs.len());
    for csr in &csrs[..samples] {
        let started = Instant::now();
        let issued = ca.sign_client_csr(csr, &rules, "calico-node.bench-node", day(), now())?;
        sign += started.elapsed();
        let record = IssuedRecord {
            serial: issued.serial_hex.clone(),
            cn: "calico-node.bench-node".into(),
            node: "bench-node".into(),
            component: "calico-node".into(),
            not_before: issued.not_before,
            not_after: issued.not_after,
            issued_at: now(),
            issuer: None,
        };
        let entry = NewAuditEntry {
            at: now(),
            actor: "bench-node".into(),
            action: AuditAction::Issue,
            subject: "calico-node.bench-node".into(),
            outcome: AuditOutcome::Ok,
            detail: format!("serial {}", issued.serial_hex),
        };
        let started = Instant::now();
        store.record_issued_audited(record, entry)?;
        commit += started.elapsed();
    }
    let n = samples.max(1) as u32;
    Ok(SigningPhases {
        samples,
        sign: sign / n,
        commit: commit / n,
        owner_check: Duration::ZERO,
    })
}

/// The signing guard's etcd round trip (`user_get` of the user signed for), `samples` times.
async fn owner_check(etcd: &EtcdCluster, samples: usize) -> Result<Duration> {
    let mut client = etcd.root_client().await?;
    let started = Instant::now();
    for _ in 0..samples {
        // The user may not exist (the bench's server reconciles it): the round trip is the cost.
        let _ = client.user_get("calico-node.bench-node").await;
    }
    Ok(started.elapsed() / samples.max(1) as u32)
}

/// Component certificates issued per group commit, from one scrape of the server's metrics.
async fn signings_per_commit(server: &ServerProcess) -> Result<f64> {
    let text = server.scrape().await?;
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let issued = value("calseg_certificates_issued_total{kind=\"component\"}")
        .context("no calseg_certificates_issued_total{kind=\"component\"} in the scrape")?;
    let commits =
        value("calseg_issuance_commits_total").context("no calseg_issuance_commits_total")?;
    Ok(issued / commits.max(1.0))
}

/// Times the manifest route's own work `samples` times: the node read, the blocking-pool hop,
/// and computing and serializing the manifest.
async fn manifest_phases(
    dir: &std::path::Path,
    policy_text: &str,
    etcd_ca_pem: &str,
    samples: usize,
) -> Result<ManifestPhases> {
    use calseg_server::store::{NodeState, RedbStore, Store};
    let now = time::OffsetDateTime::now_utc;
    let store = RedbStore::open(&dir.join("bench-manifest.redb"))?;
    let (_, csr) = key_and_csr("bench-node")?;
    store.upsert_pending_node(
        "bench-node",
        &calseg_testkit::store_conformance::ask(&csr, "sha256:bench"),
        now(),
    )?;
    store.set_node_state("bench-node", NodeState::Approved, "bench", now())?;
    let policy = calseg_server::policy::parse(policy_text, "bench policy")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut node_read, mut blocking_hop, mut compute, mut cached) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let cache = calseg_control::manifest_cache::ManifestCache::new(1);
    for _ in 0..samples {
        let started = Instant::now();
        store
            .node_standing("bench-node")?
            .context("the node is stored")?;
        node_read += started.elapsed();
        let started = Instant::now();
        tokio::task::spawn_blocking(|| ()).await?;
        blocking_hop += started.elapsed();
        let started = Instant::now();
        let manifest = calseg_server::manifest::manifest_for(&policy, "bench-node", 0, etcd_ca_pem)
            .context("the policy gives the node a manifest")?;
        serde_json::to_vec(&manifest)?;
        compute += started.elapsed();
        let started = Instant::now();
        cache
            .get_or_compute("bench-node", 0, 1, || {
                calseg_server::manifest::manifest_for(&policy, "bench-node", 0, etcd_ca_pem)
            })?
            .context("the policy gives the node a manifest")?;
        cached += started.elapsed();
    }
    let n = samples.max(1) as u32;
    Ok(ManifestPhases {
        samples,
        node_read: node_read / n,
        blocking_hop: blocking_hop / n,
        compute: compute / n,
        cached: cached / n,
    })
}

/// Runs `requests` signings and pulls with `concurrency` in flight, and their limits.
pub async fn run(requests: usize, concurrency: usize) -> Result<IdentityResult> {
    let etcd = EtcdCluster::start().await?;
    let server =
        ServerProcess::start(&etcd, &POLICY.replace("ENDPOINT", &etcd.endpoint(0)), "").await?;
    let mut node = TestNode::new("bench-node", &server.url(), &server.fleet_ca_pem())?;
    let token = server.token_for("bench-node", "1h")?;
    node.enroll(Some(&token)).await?;
    let csrs: Arc<Vec<String>> = Arc::new(
        (0..requests)
            .map(|_| key_and_csr("calico-node.bench-node").map(|(_, csr)| csr))
            .collect::<Result<_>>()?,
    );

    // Limit 1: signing with the same crypto, no network, one core.
    let ca = CertificateAuthority::generate(
        CaKind::EtcdClient,
        "bench",
        day(),
        time::OffsetDateTime::now_utc(),
    )?;
    let rules = CsrRules::default();
    let started = Instant::now();
    for csr in csrs.iter() {
        let now = time::OffsetDateTime::now_utc();
        ca.sign_client_csr(csr, &rules, "calico-node.bench-node", day(), now)?;
    }
    let bare = requests as f64 / started.elapsed().as_secs_f64();

    let client = node.client()?;
    let url = format!("{}{}", server.url(), calseg_api::paths::CERTIFICATES);
    let signed = rate(requests, concurrency, |i| {
        let (client, url, csrs) = (client.clone(), url.clone(), Arc::clone(&csrs));
        async move {
            let body = calseg_api::certificates::SignRequest {
                component: "calico-node".into(),
                csr_pem: csrs[i].clone(),
            };
            let sent = client.post(&url).json(&body).send().await;
            sent.is_ok_and(|r| r.status().is_success())
        }
    })
    .await
    .context("signing")?;
    let signings_per_commit = signings_per_commit(&server).await?;
    let mut phases = phases(&server.state_dir(), &csrs, requests.min(300))?;
    phases.owner_check = owner_check(&etcd, requests.min(300)).await?;

    let manifest_url = format!("{}{}", server.url(), calseg_api::paths::MANIFEST);
    let first = client.get(&manifest_url).send().await?;
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .context("no etag on the manifest")?;
    let manifest_body = first.bytes().await?;
    let pull_requests = requests * PULLS_PER_SIGNING;
    let pulls = gets(&client, &manifest_url, pull_requests, concurrency)
        .await
        .context("manifest pulls")?;
    let not_modified = rate(pull_requests, concurrency, |_| {
        let (client, url, etag) = (client.clone(), manifest_url.clone(), etag.clone());
        async move {
            let sent = client.get(&url).header("if-none-match", etag).send().await;
            sent.is_ok_and(|r| r.status() == 304)
        }
    })
    .await
    .context("304 pulls")?;
    let minimal = minimal_endpoint(pull_requests, concurrency, manifest_body.clone()).await?;
    let health_url = format!("{}{}", server.url(), calseg_api::paths::HEALTH);
    let health = gets(&client, &health_url, pull_requests, concurrency)
        .await
        .context("health checks")?;
    let manifest_phases = manifest_phases(
        &server.state_dir(),
        &POLICY.replace("ENDPOINT", &etcd.endpoint(0)),
        &etcd.ca().cert_pem,
        1000,
    )
    .await?;

    let result = IdentityResult {
        requests,
        concurrency,
        signed,
        bare,
        pulls,
        not_modified,
        minimal,
        health,
        manifest_bytes: manifest_body.len(),
        pull_requests,
        phases,
        manifest_phases,
        signings_per_commit,
    };
    print(&result);
    Ok(result)
}

/// GETs of `url` per second, `concurrency` in flight; each must succeed.
async fn gets(
    client: &reqwest::Client,
    url: &str,
    requests: usize,
    concurrency: usize,
) -> Result<f64> {
    rate(requests, concurrency, |_| {
        let (client, url) = (client.clone(), url.to_owned());
        async move {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await
}

/// Limit 2: the same TLS stack (calseg's rustls config, mTLS) serving a static body.
async fn minimal_endpoint(
    requests: usize,
    concurrency: usize,
    body: axum::body::Bytes,
) -> Result<f64> {
    let now = time::OffsetDateTime::now_utc;
    let fleet = CertificateAuthority::generate(CaKind::Fleet, "bench fleet", day(), now())?;
    let server_cert = fleet.issue_server(&["127.0.0.1".into()], day(), now())?;
    let tls = calseg_server::http::tls::server_config(
        &server_cert.cert_pem,
        &server_cert.key_pem,
        fleet.cert_pem(),
    )?;
    let (agent_key, agent_csr) = key_and_csr("bench-node")?;
    let agent =
        fleet.sign_agent_csr(&agent_csr, &CsrRules::default(), "bench-node", day(), now())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
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
    let client = https_client(fleet.cert_pem(), Some((&agent.cert_pem, &agent_key)))?;
    let url = format!("https://127.0.0.1:{port}/static");
    let minimal = gets(&client, &url, requests, concurrency)
        .await
        .context("minimal endpoint");
    let _ = stop.send(());
    minimal
}

fn print(r: &IdentityResult) {
    println!(
        "{} requests, {} in flight, kept-alive mTLS over loopback, client and server on the same cores",
        r.requests, r.concurrency
    );
    println!(
        "CSR signing: calseg-server {:>8.0}/s | bare signing loop {:>8.0}/s | ratio {:.2}",
        r.signed,
        r.bare,
        r.signed / r.bare
    );
    let p = &r.phases;
    println!(
        "  per signing, serially ({} samples): sign {:.3} ms, store commit (record + audit) {:.3} ms: {:.0}/s at most on one writer; etcd owner check {:.3} ms; {:.1} signings per group commit in the run",
        p.samples,
        p.sign.as_secs_f64() * 1e3,
        p.commit.as_secs_f64() * 1e3,
        1.0 / p.total().as_secs_f64().max(1e-9),
        p.owner_check.as_secs_f64() * 1e3,
        r.signings_per_commit
    );
    let m = &r.manifest_phases;
    println!(
        "  manifest route per request, serially ({} samples): node read {:.3} ms, blocking-pool hop {:.3} ms, manifest + JSON {:.3} ms (cache miss), {:.4} ms (cache hit)",
        m.samples,
        m.node_read.as_secs_f64() * 1e3,
        m.blocking_hop.as_secs_f64() * 1e3,
        m.compute.as_secs_f64() * 1e3,
        m.cached.as_secs_f64() * 1e3
    );
    println!(
        "manifest pull (200, {} bytes, {} requests): calseg-server {:>8.0}/s | minimal axum+rustls {:>8.0}/s | ratio {:.2}",
        r.manifest_bytes,
        r.pull_requests,
        r.pulls,
        r.minimal,
        r.pulls / r.minimal
    );
    println!(
        "manifest pull (304 If-None-Match): calseg-server {:>8.0}/s | ratio to minimal {:.2}",
        r.not_modified,
        r.not_modified / r.minimal
    );
    println!(
        "health check (every route's middleware, no route work): calseg-server {:>8.0}/s | ratio to minimal {:.2}",
        r.health,
        r.health / r.minimal
    );
}
