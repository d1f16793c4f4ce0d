//! Issue 4 end to end: the real calseg-server process over TLS, a real etcd, and a minimal
//! client: both enrollment paths, token reuse and expiry, cross-node and unassigned identity
//! requests, bad inputs, admin endpoints, revocation, and a restart that loses nothing.

use calseg_tests::api_client::{TestNode, call, https_client, key_and_csr};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::time::Duration;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node-per-node"
restart = ["calico-node.service"]
[components.cni-plugin]
grants = "cni-plugin"
[[hosts]]
names = ["node1", "node2"]
components = ["calico-node"]
[[hosts]]
name = "node1"
components = ["cni-plugin"]
[[hosts]]
match = "auto-*"
components = ["calico-node"]
"#
    )
}

struct Setup {
    etcd: EtcdCluster,
    server: ServerProcess,
}

async fn setup() -> Setup {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(
        &etcd,
        &policy(&etcd.endpoint(0)),
        "auto_approve = [\"auto-*\"]",
    )
    .await
    .expect("server");
    Setup { etcd, server }
}

impl Setup {
    fn node(&self, name: &str) -> TestNode {
        TestNode::new(name, &self.server.url(), &self.server.fleet_ca_pem()).expect("node")
    }

    async fn enrolled(&self, name: &str) -> TestNode {
        let mut node = self.node(name);
        let token = self.server.token_for(name, "1h").expect("token");
        let answer = node.enroll(Some(&token)).await.expect("enroll");
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        node
    }

    fn audit(&self) -> String {
        self.server.cli_ok(&["audit"]).expect("audit")
    }
}

#[tokio::test]
async fn token_enrollment_is_single_use_and_expires() {
    let s = setup().await;
    let mut node = s.node("node1");
    let token = s.server.token_for("node1", "1h").expect("token");
    let answer = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["status"], "enrolled");

    // The same token again, even by the same node with a new key, is refused.
    let mut again = s.node("node1");
    let reused = again.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(reused.status, StatusCode::FORBIDDEN, "{reused:?}");
    assert_eq!(reused.kind(), "token_exhausted");

    // A token for another node does not work here.
    let other = s.server.token_for("node2", "1h").expect("token");
    let mut thief = s.node("auto-x");
    let stolen = thief.enroll(Some(&other)).await.expect("enroll");
    assert_eq!(stolen.status, StatusCode::FORBIDDEN, "{stolen:?}");

    let short = s.server.token_for("node2", "1s").expect("token");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut late = s.node("node2");
    let expired = late.enroll(Some(&short)).await.expect("enroll");
    assert_eq!(expired.status, StatusCode::FORBIDDEN, "{expired:?}");
    assert_eq!(expired.kind(), "token_expired");
    // A malformed token changes nothing either.
    let garbage = late.enroll(Some("not-a-token")).await.expect("enroll");
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST, "{garbage:?}");

    let audit = s.audit();
    assert!(audit.contains("token_exhausted"), "{audit}");
    assert!(audit.contains("token_expired"), "{audit}");
}

#[tokio::test]
async fn enrollment_without_token_waits_for_approval_and_only_the_approved_key_gets_in() {
    let s = setup().await;
    let mut node = s.node("node2");
    let pending = node.enroll(None).await.expect("enroll");
    assert_eq!(pending.status, StatusCode::ACCEPTED, "{pending:?}");
    assert_eq!(pending.body["status"], "pending");
    let listed = s.server.cli_ok(&["nodes", "list"]).expect("list");
    assert!(
        listed.contains("node2") && listed.contains("pending"),
        "{listed}"
    );

    let fingerprint = calseg_server::pki::csr_key_fingerprint(
        &node.csr_pem,
        &calseg_server::pki::CsrRules::default(),
        "node2",
    )
    .expect("fingerprint");
    s.server
        .cli_ok(&["nodes", "approve", "node2", "--fingerprint", &fingerprint])
        .expect("approve");
    // Someone else claiming node2 with another key after approval is refused.
    let mut impostor = s.node("node2");
    let refused = impostor.enroll(None).await.expect("enroll");
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let enrolled = node.enroll(None).await.expect("enroll");
    assert_eq!(enrolled.status, StatusCode::OK, "{enrolled:?}");
    assert_eq!(
        node.manifest(None).await.expect("manifest").status,
        StatusCode::OK
    );

    // An auto-approve glob signs at once; a denied node stays out.
    let mut auto = s.node("auto-7");
    assert_eq!(
        auto.enroll(None).await.expect("enroll").status,
        StatusCode::OK
    );
    let mut denied = s.node("stranger");
    assert_eq!(
        denied.enroll(None).await.expect("enroll").status,
        StatusCode::ACCEPTED
    );
    s.server
        .cli_ok(&["nodes", "deny", "stranger"])
        .expect("deny");
    let again = denied.enroll(None).await.expect("enroll");
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{again:?}");
}

#[tokio::test]
async fn a_node_gets_its_own_identities_only_and_the_certificate_works_in_etcd() {
    let s = setup().await;
    let node1 = s.enrolled("node1").await;
    let manifest = node1.manifest(None).await.expect("manifest");
    assert_eq!(manifest.status, StatusCode::OK, "{manifest:?}");
    let users: Vec<&str> = manifest.body["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| i["etcd_user"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(users, ["calico-node.node1", "cni-plugin.node1"]);
    let etag = manifest.etag.clone().expect("etag");
    let unchanged = node1.manifest(Some(&etag)).await.expect("manifest");
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);

    let (signed, key) = node1
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let cert = signed.body["cert_pem"].as_str().expect("cert").to_owned();
    let identity = calseg_tests::pki::KeyedCert {
        cert_pem: cert,
        key_pem: key.clone(),
    };
    // The server's reconciler created calico-node.node1 in etcd; allow it a moment.
    let mut outcome = Err(String::from("not tried"));
    for _ in 0..50 {
        let mut client = s.etcd.client_as(&identity).await.expect("etcd client");
        outcome = client
            .put("/calico/felix/v2/no-region/host/node1/status", "up", None)
            .await
            .map(drop)
            .map_err(|e| e.to_string());
        if outcome.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    outcome.expect("the issued certificate writes the node's own keys");
    let mut client = s.etcd.client_as(&identity).await.expect("etcd client");
    let denied = client
        .put(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/allow-all",
            "{}",
            None,
        )
        .await
        .expect_err("calico-node may not write policy");
    assert!(denied.to_string().contains("permission denied"), "{denied}");

    // The private key never reached the server: not in its store, files or log.
    let body = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    // PKCS#8 P-256: a fixed 36-byte header (48 base64 chars), then the 32-byte private scalar.
    assert!(
        body.starts_with("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"),
        "{body}"
    );
    let marker = &body[48..88];
    let mut haystack = s.server.log();
    for entry in walk(&s.server.state_dir()) {
        haystack.push_str(&String::from_utf8_lossy(
            &std::fs::read(entry).unwrap_or_default(),
        ));
    }
    assert!(
        !haystack.contains(marker),
        "the node's private key appears on the server side"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn cross_node_unassigned_and_malformed_requests_are_refused_and_audited() {
    let s = setup().await;
    let node2 = s.enrolled("node2").await;
    let (other, _) = node2
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{other:?}");
    assert_eq!(other.kind(), "wrong_common_name");
    let (root, _) = node2.sign("calico-node", "root").await.expect("sign");
    assert_eq!(root.status, StatusCode::FORBIDDEN, "{root:?}");
    let (unassigned, _) = node2
        .sign("cni-plugin", "cni-plugin.node2")
        .await
        .expect("sign");
    assert_eq!(unassigned.status, StatusCode::FORBIDDEN, "{unassigned:?}");
    assert_eq!(unassigned.kind(), "identity_not_assigned");
    let (unknown, _) = node2
        .sign("no-such-component", "x.node2")
        .await
        .expect("sign");
    assert_eq!(unknown.status, StatusCode::FORBIDDEN, "{unknown:?}");

    let garbage = node2
        .sign_csr(
            "calico-node",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        )
        .await
        .expect("sign");
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST, "{garbage:?}");
    let (_, csr) = key_and_csr("calico-node.node2").expect("csr");
    let tampered = tamper(&csr);
    let bad_signature = node2
        .sign_csr("calico-node", &tampered)
        .await
        .expect("sign");
    assert_eq!(
        bad_signature.status,
        StatusCode::BAD_REQUEST,
        "{bad_signature:?}"
    );
    // The server may answer 413 and close before the client has sent the whole body; the
    // client then sees a reset instead of the answer. Retry until an answer arrives.
    let mut huge = None;
    for _ in 0..5 {
        if let Ok(answer) = node2.sign_csr("calico-node", &"A".repeat(100_000)).await {
            huge = Some(answer);
            break;
        }
    }
    let huge = huge.expect("no answer to an oversized request in 5 tries");
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{huge:?}");
    let wrong_type = call(
        node2
            .client()
            .expect("client")
            .post(format!(
                "{}{}",
                s.server.url(),
                calseg_api::paths::CERTIFICATES
            ))
            .header("content-type", "application/json")
            .body("{\"component\": 7}"),
    )
    .await
    .expect("call");
    assert!(wrong_type.status.is_client_error(), "{wrong_type:?}");

    let audit = s.audit();
    assert!(audit.contains("wrong_common_name"), "{audit}");
    assert!(audit.contains("identity_not_assigned"), "{audit}");
    assert!(!audit.contains("calico-node.node1   ok"), "{audit}");
}

/// Flips one byte inside the CSR's signature, keeping the PEM well-formed.
fn tamper(csr_pem: &str) -> String {
    use base64_lite::{decode, encode};
    let body: String = csr_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut der = decode(&body);
    let last = der.len() - 3;
    der[last] ^= 0x01;
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        encode(&der)
    )
}

/// Standard base64 for the tamper helper (tests only).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn decode(text: &str) -> Vec<u8> {
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::new();
        for c in text.bytes().filter(|&c| c != b'=') {
            let Some(value) = ALPHABET.iter().position(|&a| a == c) else {
                continue;
            };
            bits = (bits << 6) | value as u32;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        out
    }

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[tokio::test]
async fn wrong_certificates_plain_http_and_agent_certificates_on_admin_routes_are_refused() {
    let s = setup().await;
    let node1 = s.enrolled("node1").await;
    let url = s.server.url();

    // An agent certificate on the admin API.
    let nodes = call(
        node1
            .client()
            .expect("client")
            .get(format!("{url}{}", calseg_api::paths::ADMIN_NODES)),
    )
    .await
    .expect("call");
    assert_eq!(nodes.status, StatusCode::FORBIDDEN, "{nodes:?}");
    assert_eq!(nodes.kind(), "not_admin");
    // Nor the store's snapshot for backups (token hashes, the audit log): issue 22.
    let snapshot = call(
        node1
            .client()
            .expect("client")
            .get(format!("{url}{}", calseg_api::paths::ADMIN_STORE_SNAPSHOT)),
    )
    .await
    .expect("call");
    assert_eq!(snapshot.status, StatusCode::FORBIDDEN, "{snapshot:?}");
    assert_eq!(snapshot.kind(), "not_admin");
    // Nor the CAs, nor a step of a CA rotation (a node must never begin or finish one).
    let client = node1.client().expect("client");
    let ca = call(client.get(format!("{url}{}", calseg_api::paths::ADMIN_CA)))
        .await
        .expect("call");
    assert_eq!(ca.status, StatusCode::FORBIDDEN, "{ca:?}");
    for step in ["begin", "finish", "rollback"] {
        let path = calseg_api::paths::admin_ca_action(calseg_api::ca::ETCD_CLIENT, step);
        let stepped = call(
            client
                .post(format!("{url}{path}"))
                .json(&serde_json::json!({})),
        )
        .await
        .expect("call");
        assert_eq!(stepped.status, StatusCode::FORBIDDEN, "{step}: {stepped:?}");
        assert_eq!(stepped.kind(), "not_admin", "{step}");
    }
    assert!(
        !s.server
            .state_dir()
            .join("ca/etcd-client.next-key.pem")
            .exists(),
        "a node began a CA rotation"
    );

    // No certificate on a node route.
    let anonymous = https_client(&s.server.fleet_ca_pem(), None).expect("client");
    let manifest = call(anonymous.get(format!("{url}{}", calseg_api::paths::MANIFEST)))
        .await
        .expect("call");
    assert_eq!(manifest.status, StatusCode::UNAUTHORIZED, "{manifest:?}");

    // A certificate from the etcd client CA (CN node1) is no fleet certificate.
    let etcd_cert = s.etcd.mint_client("node1").expect("mint");
    let wrong_ca = https_client(
        &s.server.fleet_ca_pem(),
        Some((&etcd_cert.cert_pem, &etcd_cert.key_pem)),
    )
    .expect("client");
    let refused = wrong_ca
        .get(format!("{url}{}", calseg_api::paths::MANIFEST))
        .send()
        .await;
    assert!(refused.is_err() || refused.is_ok_and(|r| r.status() == StatusCode::UNAUTHORIZED));

    // Plain HTTP gets a hint, not a handshake error.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", s.server.port()))
        .await
        .expect("connect");
    plain
        .write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut reply = String::new();
    plain.read_to_string(&mut reply).await.expect("read");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("https://"), "{reply}");
}

#[tokio::test]
async fn a_revoked_node_is_refused_at_once_and_loses_its_etcd_users() {
    let s = setup().await;
    let node1 = s.enrolled("node1").await;
    let (signed, key) = node1
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(signed.status, StatusCode::OK);
    s.server
        .cli_ok(&["nodes", "revoke", "node1"])
        .expect("revoke");
    let manifest = node1.manifest(None).await.expect("manifest");
    assert_eq!(manifest.status, StatusCode::FORBIDDEN, "{manifest:?}");
    assert_eq!(manifest.kind(), "node_revoked");
    let (again, _) = node1
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(again.status, StatusCode::FORBIDDEN);

    // Its component certificate stops working in etcd once the reconciler has run.
    let identity = calseg_tests::pki::KeyedCert {
        cert_pem: signed.body["cert_pem"].as_str().expect("cert").to_owned(),
        key_pem: key,
    };
    let mut denied = false;
    for _ in 0..50 {
        let mut client = s.etcd.client_as(&identity).await.expect("client");
        if let Err(e) = client
            .get("/calico/resources/v3/projectcalico.org/nodes/node1", None)
            .await
            && e.to_string().contains("permission denied")
        {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(denied, "revoked node1's etcd identity still works");
}

#[tokio::test]
async fn the_store_survives_a_restart_with_nothing_lost() {
    let mut s = setup().await;
    let node1 = s.enrolled("node1").await;
    let (signed, _) = node1
        .sign("calico-node", "calico-node.node1")
        .await
        .expect("sign");
    assert_eq!(signed.status, StatusCode::OK);
    let audit_before = s.audit();
    let nodes_before = s
        .server
        .cli_ok(&["nodes", "list", "--json"])
        .expect("nodes");

    s.server.restart().await.expect("restart");
    assert_eq!(
        node1.manifest(None).await.expect("manifest").status,
        StatusCode::OK
    );
    let audit_after = s.audit();
    assert!(
        audit_after.starts_with(audit_before.trim_end()),
        "audit lost entries:\n{audit_before}\n---\n{audit_after}"
    );
    let nodes_after: serde_json::Value = serde_json::from_str(
        &s.server
            .cli_ok(&["nodes", "list", "--json"])
            .expect("nodes"),
    )
    .expect("json");
    let before: serde_json::Value = serde_json::from_str(&nodes_before).expect("json");
    assert_eq!(before[0]["fleet_cert"], nodes_after[0]["fleet_cert"]);
    assert_eq!(before[0]["state"], nodes_after[0]["state"]);
}
