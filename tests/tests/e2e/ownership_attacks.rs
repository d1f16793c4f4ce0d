//! Issue 17, findings 3, 4 and 6, performed as the red team did, against the real server,
//! agent and etcd: a policy that would hand out etcd `root`; a foreign etcd user (holding root)
//! that a glob token tries to enroll into, while `nodes revoke` must really revoke; and a
//! certificate issued before a revocation that must stay dead after the node comes back.

use calseg_tests::agent_host::{AgentWorld, describe, standin_policy};
use calseg_tests::api_client::{TestNode, key_and_csr};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::pki::KeyedCert;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::time::Duration;

/// calico-node with per-node grants for `hosts` (the body of one `[[hosts]]` table), under the
/// identity template `user`.
fn policy(endpoint: &str, user: &str, hosts: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[identity]
user = "{user}"
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
[[hosts]]
{hosts}
components = ["calico-node"]
"#
    )
}

/// A put with `identity` on its node's own key: `Ok` when etcd accepted it.
async fn put_as(etcd: &EtcdCluster, identity: &KeyedCert, node: &str) -> Result<(), String> {
    let mut client = etcd
        .client_as(identity)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    client
        .put(format!("/calico/felix/v1/host/{node}/probe"), "x", None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Enrolls `node` with a fresh node token and has the server sign its calico-node identity
/// `cn`; returns the node and the identity.
async fn enrolled_identity(server: &ServerProcess, node: &str, cn: &str) -> (TestNode, KeyedCert) {
    let mut test_node = TestNode::new(node, &server.url(), &server.fleet_ca_pem()).expect("node");
    let token = server.token_for(node, "1h").expect("token");
    let answer = test_node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let (signed, key) = test_node.sign("calico-node", cn).await.expect("sign");
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let identity = KeyedCert {
        cert_pem: signed.body["cert_pem"].as_str().expect("cert").to_owned(),
        key_pem: key,
    };
    (test_node, identity)
}

/// Retries `put_as` until etcd accepts it (the reconciler creates users moments after an
/// enrollment), for at most 10 s.
async fn works_soon(etcd: &EtcdCluster, identity: &KeyedCert, node: &str) {
    let mut last = String::new();
    for _ in 0..50 {
        match put_as(etcd, identity, node).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{node}'s identity never worked in etcd: {last}");
}

/// Finding 3: `user = "{node}"` with `match = "*"` would let a node enrolling as `root` get
/// `CN=root`. `check`, a direct `apply`, `serve` and a SIGHUP reload refuse it, saying the rule,
/// and etcd is unchanged; a node enrolling as `root` under the running policy gets no `root`.
#[tokio::test]
async fn a_policy_that_can_render_root_is_refused_everywhere_and_root_is_never_signed() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let good = policy(&etcd.endpoint(0), "{component}.{node}", "match = \"*\"");
    let server = ServerProcess::start(&etcd, &good, "")
        .await
        .expect("server");
    server.wait_rbac_applied().await.expect("rbac");
    let before = etcd.auth_snapshot().await.expect("snapshot");

    let bad = policy(&etcd.endpoint(0), "{node}", "match = \"*\"");
    let bad_file = server.dir().join("bad-policy.toml");
    std::fs::write(&bad_file, &bad).expect("write");
    let bad_path = bad_file.display().to_string();
    let rule = "an identity template must contain {component} and {node}";
    for args in [
        vec!["check", "--policy", &bad_path],
        vec!["apply", "--direct", "--policy", &bad_path],
    ] {
        let out = server.cli(&args).expect("run");
        let text = describe(&out);
        assert!(!out.status.success(), "{args:?} accepted it:\n{text}");
        assert!(
            text.contains("renders the reserved etcd user \"root\""),
            "{text}"
        );
        assert!(text.contains(rule), "{text}");
    }

    // A server does not start with it.
    let refused = ServerProcess::start(&etcd, &bad, "").await;
    let error = format!("{:#}", refused.err().expect("a server started with it"));
    assert!(error.contains("renders the reserved etcd user"), "{error}");

    // A reload keeps the old policy.
    std::fs::write(server.policy_path(), &bad).expect("write");
    server.reload().expect("SIGHUP");
    let mut logged = false;
    for _ in 0..50 {
        if server.log().contains("policy reload refused") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "no refusal logged:\n{}", server.log());
    assert!(server.log().contains("renders the reserved etcd user"));

    // The attack under the policy in force: enroll as root with a glob token, ask for CN=root.
    let token = server
        .cli_ok(&["token", "create", "--match", "*", "--ttl", "1h"])
        .expect("token")
        .trim()
        .to_owned();
    let mut root_node = TestNode::new("root", &server.url(), &server.fleet_ca_pem()).expect("node");
    let answer = root_node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let (signed, _) = root_node.sign("calico-node", "root").await.expect("sign");
    assert_eq!(signed.status, StatusCode::FORBIDDEN, "{signed:?}");
    assert!(
        signed.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("calico-node.root")
    );
    server.wait_rbac_applied().await.expect("rbac");
    let after = etcd.auth_snapshot().await.expect("snapshot");
    let root_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("user root:"))
            .map(str::to_owned)
    };
    assert_eq!(root_line(&after), root_line(&before), "root changed");
    let added: Vec<&str> = after.lines().filter(|l| !before.contains(*l)).collect();
    // The first node of the glob rule: its user, its per-node role, and the shared role.
    assert!(
        added
            .iter()
            .all(|l| l.contains("calico-node.root") || l.starts_with("role calseg.calico-node:")),
        "etcd changed beyond the root node's own identity: {added:?}"
    );
}

/// Finding 4: a foreign user `calico-node.worker-legacy` holding `root` exists. Enrolling
/// `worker-legacy` with a `worker-*` token is refused and audited; the conflict is reported and
/// holds back only that user; `nodes revoke node1` answers "revoked" only once node1's users
/// are gone, so its etcd writes fail right after; other nodes still reconcile; a revoke that
/// cannot finish says what is pending, exits 1, and shows in calseg_revocations_pending.
#[tokio::test]
async fn a_foreign_user_is_never_signed_and_blocks_nothing_else_and_revoke_tells_the_truth() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let mut root = etcd.root_client().await.expect("root");
    root.user_add(
        "calico-node.worker-legacy",
        "",
        Some(etcd_client::UserAddOptions::new().with_no_pwd()),
    )
    .await
    .expect("user add");
    root.user_grant_role("calico-node.worker-legacy", "root")
        .await
        .expect("grant root");
    let text = policy(
        &etcd.endpoint(0),
        "{component}.{node}",
        "names = [\"node1\", \"node2\", \"node3\", \"worker-legacy\"]\n\
         components = [\"calico-node\"]\n[[hosts]]\nmatch = \"worker-*\"",
    );
    let server = ServerProcess::start(&etcd, &text, "")
        .await
        .expect("server");
    let (_n1, id1) = enrolled_identity(&server, "node1", "calico-node.node1").await;
    let (_n2, id2) = enrolled_identity(&server, "node2", "calico-node.node2").await;
    let (n3, id3) = enrolled_identity(&server, "node3", "calico-node.node3").await;
    for (id, node) in [(&id1, "node1"), (&id2, "node2"), (&id3, "node3")] {
        works_soon(&etcd, id, node).await;
    }

    // The attack: a worker-* token enrolls worker-legacy.
    let token = server
        .cli_ok(&[
            "token", "create", "--match", "worker-*", "--uses", "1", "--ttl", "1h",
        ])
        .expect("token")
        .trim()
        .to_owned();
    let mut legacy =
        TestNode::new("worker-legacy", &server.url(), &server.fleet_ca_pem()).expect("node");
    let answer = legacy.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(answer.kind(), "etcd_user_not_owned");
    // The anonymous caller learns no etcd user or role; the audit log has the detail.
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("audit log"), "{message}");
    assert!(
        !message.contains("calico-node.worker-legacy") && !message.contains("root"),
        "{message}"
    );
    let audit = server.cli_ok(&["audit"]).expect("audit");
    assert!(
        audit.lines().any(|l| l.contains("worker-legacy")
            && l.contains("denied")
            && l.contains("etcd_user_not_owned")
            && l.contains("calico-node.worker-legacy")
            && l.contains("roles: root")
            && l.contains("etcdctl user delete")),
        "{audit}"
    );
    let legacy_roles = root
        .user_get("calico-node.worker-legacy")
        .await
        .expect("legacy");
    assert_eq!(
        legacy_roles.roles(),
        ["root"],
        "the foreign user was touched"
    );

    // The refusal did not use the one-use token up.
    let mut worker6 =
        TestNode::new("worker-6", &server.url(), &server.fleet_ca_pem()).expect("node");
    let answer = worker6.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");

    // The conflict is reported, and holds back only its own user.
    let plan = server.cli(&["plan"]).expect("plan");
    let plan_text = describe(&plan);
    assert!(
        plan_text
            .contains("user calico-node.worker-legacy exists in etcd but calseg did not create it"),
        "{plan_text}"
    );
    let applied = server.cli(&["apply"]).expect("apply");
    let applied_text = describe(&applied);
    assert_eq!(applied.status.code(), Some(2), "{applied_text}");
    assert!(
        applied_text.contains("1 conflict(s) left alone"),
        "{applied_text}"
    );
    let (_n5, id5) = enrolled_identity(&server, "worker-5", "calico-node.worker-5").await;
    works_soon(&etcd, &id5, "worker-5").await;
    let scrape = server.scrape().await.expect("scrape");
    assert!(scrape.contains("calseg_rbac_conflicts 1"), "{scrape}");

    // Revocation is applied despite the conflict, before the command says so.
    let out = server.cli(&["nodes", "revoke", "node1"]).expect("revoke");
    let said = describe(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("node node1: revoked"), "{said}");
    let denied = put_as(&etcd, &id1, "node1").await;
    assert!(
        denied.is_err(),
        "node1 still writes right after \"revoked\""
    );
    put_as(&etcd, &id2, "node2")
        .await
        .expect("node2 unaffected");

    // A user taken out of calseg's ownership (an operator revokes calseg's roles from it and
    // gives it one of their own): never signed again, and a revoke says it is still there
    // instead of "revoked".
    root.role_add("handmade").await.expect("role add");
    root.user_grant_role("calico-node.node3", "handmade")
        .await
        .expect("their own role");
    let held = root
        .user_get("calico-node.node3")
        .await
        .expect("node3")
        .roles()
        .to_vec();
    for role in held.iter().filter(|r| r.starts_with("calseg")) {
        root.user_revoke_role("calico-node.node3", role.as_str())
            .await
            .expect("take it out of calseg's hands");
    }
    let (_key, csr) = key_and_csr("calico-node.node3").expect("csr");
    let again = n3.sign_csr("calico-node", &csr).await.expect("sign");
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{again:?}");
    assert_eq!(again.kind(), "etcd_user_not_owned");
    let out = server
        .cli(&["nodes", "revoke", "node3", "--wait", "2s"])
        .expect("revoke");
    let said = describe(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(!said.contains("node node3: revoked"), "{said}");
    assert!(
        said.contains("calico-node.node3: calseg does not own it"),
        "{said}"
    );
    let mut pending_metric = String::new();
    for _ in 0..50 {
        pending_metric = server.scrape().await.expect("scrape");
        if pending_metric.contains("calseg_revocations_pending 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        pending_metric.contains("calseg_revocations_pending 1"),
        "{pending_metric}"
    );
}

/// Finding 6: revoke node2, give it a new token, `enroll --force`: the certificate issued
/// before the revocation is refused by etcd, and the agent rotates to a new identity (a new
/// etcd user, `calico-node.node2~g1`) that works.
#[tokio::test]
async fn a_certificate_issued_before_a_revocation_never_works_again() {
    let world = AgentWorld::start("node2", |endpoint| {
        standin_policy(endpoint, "names = [\"node2\"]")
    })
    .await
    .expect("world");
    let (etcd, server, agent) = (&world.etcd, &world.server, &world.agent);
    agent.enroll(server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let installed = |agent: &calseg_tests::agent_host::AgentHost| KeyedCert {
        cert_pem: std::fs::read_to_string(
            agent.host.path("/etc/calico/certs/calico-node/cert.pem"),
        )
        .expect("cert"),
        key_pem: std::fs::read_to_string(agent.host.path("/etc/calico/certs/calico-node/key.pem"))
            .expect("key"),
    };
    let old = installed(agent);
    put_as(etcd, &old, "node2")
        .await
        .expect("old identity works");

    let out = server.cli(&["nodes", "revoke", "node2"]).expect("revoke");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        put_as(etcd, &old, "node2").await.is_err(),
        "works after revoke"
    );

    // The node comes back with a new token.
    let token = server.token_for("node2", "10m").expect("token");
    let out = agent
        .agent(&format!(
            "enroll --force --ca-hash {} --token {token}",
            server.fleet_ca_hash()
        ))
        .expect("enroll");
    assert!(out.status.success(), "{}", describe(&out));
    server.wait_rbac_applied().await.expect("rbac");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "the agent did not rotate:\n{out}");
    let new = installed(agent);
    assert_ne!(new.key_pem, old.key_pem, "no new key");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(agent.host.path("/var/lib/calseg/agent/manifest.json"))
            .expect("manifest"),
    )
    .expect("json");
    assert_eq!(
        manifest["identities"][0]["etcd_user"], "calico-node.node2~g1",
        "{manifest}"
    );
    put_as(etcd, &new, "node2")
        .await
        .expect("new identity works");
    let refused = put_as(etcd, &old, "node2").await;
    assert!(
        refused.is_err(),
        "the pre-revocation certificate works again"
    );
    let audit = server.cli_ok(&["audit"]).expect("audit");
    assert!(audit.contains("calico-node.node2~g1"), "{audit}");
}
