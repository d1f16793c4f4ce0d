//! Issue 17, findings 1, 8 and 9 (node-name length), end to end against the real
//! `calseg-server`, the real `calseg-agent` and a real etcd: a pending enrollment taken over by
//! someone else's key, a flood of unauthenticated enrollments, and node names too long for a
//! certificate.

use calseg_server::pki::{CsrRules, csr_key_fingerprint};
use calseg_tests::agent_host::describe;
use calseg_tests::api_client::{TestNode, https_client, https_client_from};
use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node-per-node"
restart = ["calico-node.service"]
[[hosts]]
match = "*"
components = ["calico-node"]
"#
    )
}

async fn start(api_extra: &str) -> (EtcdCluster, ServerProcess) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), api_extra)
        .await
        .expect("server");
    (etcd, server)
}

/// `nodes show NODE --json`.
fn show(server: &ServerProcess, node: &str) -> Value {
    let out = server
        .cli_ok(&["nodes", "show", node, "--json"])
        .expect("nodes show");
    serde_json::from_str(&out).expect("json")
}

fn audit(server: &ServerProcess) -> Vec<Value> {
    let out = server.cli_ok(&["audit", "--json"]).expect("audit");
    serde_json::from_str(&out).expect("audit json")
}

fn nodes(server: &ServerProcess) -> Vec<Value> {
    let out = server.cli_ok(&["nodes", "list", "--json"]).expect("list");
    serde_json::from_str(&out).expect("list json")
}

/// The first `sha256:<64 hex>` after `marker` in `text`.
fn fingerprint_after(text: &str, marker: &str) -> Option<String> {
    let at = text.find(marker)? + marker.len();
    let candidate = text.get(at..at + 71)?;
    let ok =
        candidate.starts_with("sha256:") && candidate[7..].bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| candidate.to_owned())
}

/// The real agent, enrolling `node` without a token and waiting for approval; its output goes
/// to a file the test reads while it waits.
struct WaitingAgent {
    child: Child,
    dir: tempfile::TempDir,
}

impl WaitingAgent {
    fn start(server: &ServerProcess, node: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "server = \"{}\"\nnode = \"{node}\"\nstate_dir = \"{}\"\n",
                server.url(),
                dir.path().join("state").display()
            ),
        )
        .expect("agent.toml");
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
        let child = Command::new(bins::path("calseg-agent"))
            .arg("--config")
            .arg(&config)
            .args([
                "enroll",
                "--ca-hash",
                server.fleet_ca_hash(),
                "--wait",
                "120s",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn calseg-agent");
        Self { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn state(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("state").join(file)).ok()
    }

    /// Waits for the fingerprint the agent prints while pending.
    async fn printed_fingerprint(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(fp) = fingerprint_after(&self.log(), "key_fingerprint=") {
                return fp;
            }
            assert!(
                Instant::now() < deadline,
                "no fingerprint printed:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the agent to exit; its status.
    async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent still running:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for WaitingAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finding 1, exactly as reported: the real agent asks without a token and waits; an attacker
/// who can reach the API posts `/v1/enroll` for the same name with its own CSR and no client
/// certificate. Refused and audited, the pending record keeps the agent's key, approval names
/// that key (a wrong or missing fingerprint changes nothing), the agent gets its certificate
/// and the attacker's key never does.
#[tokio::test]
async fn a_pending_enrollment_cannot_be_taken_over_and_approval_binds_the_agents_key() {
    let (_etcd, server) = start("").await;
    let mut agent = WaitingAgent::start(&server, "pend-1");
    let printed = agent.printed_fingerprint().await;
    let log = agent.log();
    assert!(
        log.contains(&format!(
            "calseg-server nodes approve pend-1 --fingerprint {printed}"
        )),
        "the agent says what to run:\n{log}"
    );

    // The server shows the same key, where it came from and when.
    let pending = show(&server, "pend-1");
    assert_eq!(pending["state"], "pending", "{pending}");
    assert_eq!(pending["pending_key"]["fingerprint"], printed.as_str());
    assert_eq!(pending["pending_key"]["source"], "127.0.0.1");
    assert!(pending["enrolled_at"].is_i64() && pending["last_seen"].is_i64());
    let shown = server.cli_ok(&["nodes", "show", "pend-1"]).expect("show");
    assert!(
        shown.contains(&format!("key:         {printed}")),
        "{shown}"
    );
    let listed = server.cli_ok(&["nodes", "list"]).expect("list");
    assert!(
        listed.contains("PENDING") && listed.contains(&printed) && listed.contains("127.0.0.1"),
        "{listed}"
    );

    // The attack: the same name, another key, no client certificate.
    let mut attacker = TestNode::new("pend-1", &server.url(), &server.fleet_ca_pem()).unwrap();
    let attacker_fp =
        csr_key_fingerprint(&attacker.csr_pem, &CsrRules::default(), "pend-1").unwrap();
    let refused = attacker.enroll(None).await.expect("enroll");
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert_eq!(refused.kind(), "pending_key_mismatch");
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&printed) && message.contains(&attacker_fp),
        "{message}"
    );
    let entries = audit(&server);
    let refusals: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["subject"] == "pend-1"
                && e["outcome"] == "denied"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("pending_key_mismatch") && d.contains(&attacker_fp))
        })
        .collect();
    assert_eq!(refusals.len(), 1, "audited once: {entries:#?}");
    let after = show(&server, "pend-1");
    assert_eq!(after["pending_key"], pending["pending_key"], "{after}");
    assert_eq!(after["pending_csr"], pending["pending_csr"], "{after}");
    assert_eq!(after["state"], "pending");

    // Approval without the fingerprint, or with the attacker's: refused, nothing changes.
    let missing = server.cli(&["nodes", "approve", "pend-1"]).expect("run");
    let text = describe(&missing);
    assert!(!missing.status.success(), "{text}");
    assert!(
        text.contains("fingerprint_required") && text.contains(&printed),
        "names the key waiting: {text}"
    );
    let wrong = server
        .cli(&["nodes", "approve", "pend-1", "--fingerprint", &attacker_fp])
        .expect("run");
    let text = describe(&wrong);
    assert!(!wrong.status.success(), "{text}");
    assert!(
        text.contains("fingerprint_mismatch") && text.contains(&printed),
        "{text}"
    );
    let malformed = server
        .cli(&["nodes", "approve", "pend-1", "--fingerprint", "sha256:1234"])
        .expect("run");
    assert!(
        describe(&malformed).contains("invalid_fingerprint"),
        "{}",
        describe(&malformed)
    );
    assert_eq!(show(&server, "pend-1"), after, "nothing changed");
    let denied_approvals = audit(&server)
        .iter()
        .filter(|e| e["action"] == "approve" && e["outcome"] == "denied")
        .count();
    assert_eq!(denied_approvals, 3, "refused approvals are audited");

    // Approve the agent's key: the agent gets its certificate, for its own key.
    server
        .cli_ok(&["nodes", "approve", "pend-1", "--fingerprint", &printed])
        .expect("approve");
    let status = agent.exit(Duration::from_secs(60)).await;
    assert!(status.success(), "{status:?}\n{}", agent.log());
    let cert = agent.state("fleet.pem").expect("fleet.pem");
    let info = calseg_agent::keys::cert_info(&cert).expect("cert");
    assert_eq!(
        calseg_api::fingerprint::of_public_key(&info.public_key_der),
        printed
    );

    // The attacker asking again gets nothing: the name is enrolled, with the agent's key.
    let again = attacker.enroll(None).await.expect("enroll");
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{again:?}");
    assert!(again.body.get("cert_pem").is_none() && attacker.cert_pem.is_none());
    let enrolled = show(&server, "pend-1");
    assert_eq!(enrolled["state"], "approved");
    assert_eq!(enrolled["pending_key"], Value::Null);
    let fleet_certs = audit(&server)
        .iter()
        .filter(|e| {
            e["action"] == "enroll"
                && e["outcome"] == "ok"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("fleet certificate"))
        })
        .count();
    assert_eq!(fleet_certs, 1, "one fleet certificate, the agent's");
}

/// Finding 8: a bounded burst of unauthenticated enrollments from one address is rate limited
/// (429 with Retry-After), the pending nodes never exceed `[api] max_pending`, the store stays
/// small, pending requests expire after `[api] pending_ttl` (audited), and `nodes delete`
/// removes a pending node but refuses an enrolled one.
#[tokio::test]
async fn a_burst_of_unauthenticated_enrollments_is_rate_limited_capped_and_expires() {
    let (_etcd, server) =
        start("max_pending = 5\npending_ttl = \"15s\"\nenroll_burst = 10\nenroll_per_minute = 1")
            .await;
    let store = server.state_dir().join("state.redb");
    let size_before = std::fs::metadata(&store).expect("store").len();
    let client = https_client(&server.fleet_ca_pem(), None).unwrap();
    let (mut accepted, mut full, mut limited) = (0, 0, 0);
    for i in 0..40 {
        let node =
            TestNode::new(&format!("flood-{i}"), &server.url(), &server.fleet_ca_pem()).unwrap();
        let body = calseg_api::enroll::EnrollRequest {
            node: node.name.clone(),
            token: None,
            csr_pem: node.csr_pem.clone(),
        };
        let response = client
            .post(format!("{}{}", server.url(), calseg_api::paths::ENROLL))
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let answer: Value = response.json().await.expect("json");
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer["kind"], "too_many_pending", "{answer}");
                full += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer["kind"], "enroll_rate_limited", "{answer}");
                assert!(retry_after.is_some(), "Retry-After");
                limited += 1;
            }
            other => panic!("{other}: {answer}"),
        }
        if i % 5 == 4 {
            let pending = nodes(&server)
                .iter()
                .filter(|n| n["state"] == "pending")
                .count();
            assert!(pending <= 5, "{pending} pending after request {i}");
        }
    }
    assert_eq!((accepted, full, limited), (5, 5, 30));
    let scrape = server.scrape().await.expect("metrics");
    assert!(
        scrape.contains("calseg_nodes{state=\"pending\"} 5"),
        "{scrape}"
    );
    assert!(
        scrape
            .lines()
            .any(|l| l == "calseg_requests_denied_total{kind=\"enroll_rate_limited\"} 30"),
        "{scrape}"
    );
    let size_after = std::fs::metadata(&store).expect("store").len();
    assert!(
        size_after <= size_before + 2 * 1024 * 1024,
        "store grew from {size_before} to {size_after} bytes"
    );

    // `nodes delete`: a pending node goes (audited); an enrolled one is refused.
    server
        .cli_ok(&["nodes", "delete", "flood-0"])
        .expect("delete");
    assert!(
        server
            .cli(&["nodes", "show", "flood-0"])
            .is_ok_and(|o| !o.status.success())
    );
    // The flooding address is still limited; another source has its own bucket.
    let token = server.token_for("enrolled-1", "10m").expect("token");
    let enrolled = TestNode::new("enrolled-1", &server.url(), &server.fleet_ca_pem()).unwrap();
    let body = calseg_api::enroll::EnrollRequest {
        node: enrolled.name.clone(),
        token: Some(token),
        csr_pem: enrolled.csr_pem.clone(),
    };
    let url = format!("{}{}", server.url(), calseg_api::paths::ENROLL);
    let limited = client.post(&url).json(&body).send().await.expect("send");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = https_client_from(
        &server.fleet_ca_pem(),
        None,
        Some("127.0.0.2".parse().unwrap()),
    )
    .unwrap();
    let answer = other.post(&url).json(&body).send().await.expect("send");
    assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.text().await);
    let refused = server.cli(&["nodes", "delete", "enrolled-1"]).expect("run");
    let text = describe(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("nodes revoke enrolled-1"), "{text}");
    assert_eq!(show(&server, "enrolled-1")["state"], "approved");

    // Expiry: the other pending requests are dropped after the TTL, each audited.
    let deadline = Instant::now() + Duration::from_secs(45);
    while nodes(&server).iter().any(|n| n["state"] == "pending") {
        assert!(Instant::now() < deadline, "pending requests never expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let entries = audit(&server);
    let deleted: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["action"] == "node-delete")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default(),
                e["detail"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(deleted.len(), 5, "{deleted:#?}");
    assert!(deleted[0].0.starts_with("admin"), "{deleted:?}");
    assert!(
        deleted[1..]
            .iter()
            .all(|(actor, detail)| *actor == "system" && detail.contains("expired")),
        "{deleted:?}"
    );
    assert_eq!(
        show(&server, "enrolled-1")["state"],
        "approved",
        "only pending ones"
    );
}

/// Finding 9: a node name longer than a certificate's Common Name allows (64 characters) is
/// refused when the token is made, with the limit in the message, and nothing is created;
/// enrolling under such a name is a 400, not a 500. A name whose etcd users would not fit a
/// Common Name is refused when it enrolls.
#[tokio::test]
async fn node_names_longer_than_a_common_name_are_refused_at_token_creation() {
    let (_etcd, server) = start("").await;
    for len in [65, 253] {
        let name = "n".repeat(len);
        let out = server
            .cli(&["token", "create", "--node", &name])
            .expect("run");
        let text = describe(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains(&format!("{len} characters long, the limit is 64")),
            "{text}"
        );
        let mut node = TestNode::new(&name, &server.url(), &server.fleet_ca_pem()).unwrap();
        let answer = node.enroll(None).await.expect("enroll");
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        assert_eq!(answer.kind(), "invalid_node_name");
    }
    let tokens = server.cli_ok(&["token", "list", "--json"]).expect("tokens");
    assert_eq!(
        serde_json::from_str::<Value>(&tokens).unwrap(),
        Value::Array(vec![])
    );
    assert!(nodes(&server).is_empty(), "nothing created");

    // 64 characters fit a fleet certificate, but not this node's etcd user (the template adds
    // "calico-node."): refused when it enrolls, naming the user and the limit, token kept.
    let name = "n".repeat(64);
    let token = server.token_for(&name, "10m").expect("token");
    let mut node = TestNode::new(&name, &server.url(), &server.fleet_ca_pem()).unwrap();
    let answer = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.kind(), "etcd_user_too_long", "{answer:?}");
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("76 characters") && m.contains("at most 64")),
        "{answer:?}"
    );
    assert!(nodes(&server).is_empty(), "nothing created");
    // The longest name whose etcd user fits enrolls.
    let name = "n".repeat(64 - "calico-node.".len());
    let token = server.token_for(&name, "10m").expect("token");
    let mut node = TestNode::new(&name, &server.url(), &server.fleet_ca_pem()).unwrap();
    let answer = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}
