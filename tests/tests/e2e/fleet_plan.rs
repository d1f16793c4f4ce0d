//! Issue 18, point 1: `calseg-server plan --policy FILE` through the running server, the fleet
//! plan of an edited policy: the etcd RBAC diff with the nodes that enrolled by glob, then each
//! node's files, units and wave. Real etcd, real `calseg-server serve`, nodes enrolled through
//! the real API (one with a node token, one with a glob token).

use calseg_api::plan::{FileChangeKind, FleetPlan, PlanSource};
use calseg_tests::agent_host::describe;
use calseg_tests::api_client::{TestNode, admin_client, call};
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;

/// calico-node on node-a (by name) and worker-* (by glob); `node_a` lists node-a's components;
/// `extra_node_grant` goes into calico-node's per-node grants. Canary: node-a.
fn policy(endpoint: &str, node_a: &str, extra_node_grant: &str) -> String {
    format!(
        r#"# fleet-plan-marker: this text must never reach the server's log
calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }}{extra_node_grant} ]
restart = ["calico-node.service"]
[components.calicoctl-ro]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
calicoctl_cfg = "/etc/calico/calicoctl.cfg"
restart = ["calico-felix.service"]
[[hosts]]
names = ["node-a"]
components = [{node_a}]
[[hosts]]
match = "worker-*"
components = ["calico-node"]
[rollout]
canary = ["node-a"]
"#
    )
}

const IPAM: &str = r#", { prefix = "/calico/ipam/v2/host/{node}/", access = "readwrite" }"#;

/// The revision of the manifest `node` is served now.
async fn served(node: &TestNode) -> String {
    let answer = node.manifest(None).await.expect("manifest");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["revision"]
        .as_str()
        .expect("revision")
        .to_owned()
}

#[tokio::test]
async fn plan_policy_through_the_server_shows_rbac_with_glob_nodes_and_each_nodes_files_units_and_wave()
 {
    let etcd = calseg_tests::etcd::EtcdCluster::start()
        .await
        .expect("etcd");
    let endpoint = etcd.endpoint(0);
    let live = policy(&endpoint, "\"calico-node\"", "");
    let server = ServerProcess::start(&etcd, &live, "")
        .await
        .expect("server");

    // node-a with its own token, worker-1 with a glob token.
    let mut node_a = TestNode::new("node-a", &server.url(), &server.fleet_ca_pem()).expect("node");
    let token = server.token_for("node-a", "1h").expect("token");
    let answer = node_a.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let glob = server
        .cli_ok(&[
            "token", "create", "--match", "worker-*", "--uses", "2", "--ttl", "1h",
        ])
        .expect("glob token");
    let mut worker =
        TestNode::new("worker-1", &server.url(), &server.fleet_ca_pem()).expect("node");
    let answer = worker.enroll(Some(glob.trim())).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    server.wait_rbac_applied().await.expect("rbac applied");

    let etcd_before = etcd.auth_snapshot().await.expect("snapshot");
    let served_before = (served(&node_a).await, served(&worker).await);
    let revision_before = server.rollout_status().expect("status").policy_revision;

    // The edit: calicoctl-ro for node-a, and one more per-node grant for calico-node.
    let edited = server.dir().join("edited-policy.toml");
    std::fs::write(
        &edited,
        policy(&endpoint, "\"calico-node\", \"calicoctl-ro\"", IPAM),
    )
    .expect("write");
    let edited = edited.display().to_string();

    let text = server.cli(&["plan", "--policy", &edited]).expect("plan");
    let said = describe(&text);
    assert_eq!(text.status.code(), Some(2), "{said}");
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains(
            "+ role calseg.calico-node.worker-1: grant readwrite prefix /calico/ipam/v2/host/worker-1/"
        ),
        "{said}"
    );
    assert!(!out.contains("- user calico-node.worker-1"), "{said}");
    assert!(
        !out.contains("- role calseg.calico-node.worker-1"),
        "{said}"
    );
    assert!(out.contains("+ user calicoctl-ro.node-a"), "{said}");
    let row = out
        .lines()
        .find(|l| l.starts_with("node-a "))
        .unwrap_or_else(|| panic!("no row for node-a:\n{said}"));
    let cells: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        ["node-a", "1", "4 added", "calico-felix.service"],
        "{said}"
    );
    assert!(!out.lines().any(|l| l.starts_with("worker-1")), "{said}");
    assert!(
        out.contains("1 of 2 enrolled node(s) change (1 unchanged, not listed"),
        "{said}"
    );

    let json = server
        .cli(&["plan", "--policy", &edited, "--json"])
        .expect("plan --json");
    assert_eq!(json.status.code(), Some(2), "{}", describe(&json));
    let plan: FleetPlan = serde_json::from_slice(&json.stdout).expect("FleetPlan JSON");
    assert_eq!(plan.source, PlanSource::Server);
    assert!(plan.nodes_known);
    assert_eq!(plan.policy, edited);
    for change in &plan.rbac.changes {
        let takes = [
            "delete_user",
            "delete_role",
            "revoke_role",
            "revoke_permission",
        ];
        assert!(
            !takes.contains(&change.op.as_str()),
            "takes away: {change:?}"
        );
    }
    assert_eq!(plan.unchanged, ["worker-1"]);
    assert_eq!(plan.nodes.len(), 1, "{:?}", plan.nodes);
    let a = &plan.nodes[0];
    assert_eq!((a.node.as_str(), a.wave), ("node-a", Some(1)));
    assert_eq!(a.revision_now.as_deref(), Some(served_before.0.as_str()));
    let files: Vec<(&str, FileChangeKind)> = a
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.change))
        .collect();
    assert_eq!(
        files,
        [
            ("/etc/calico/calicoctl.cfg", FileChangeKind::Added),
            (
                "/etc/calico/certs/calicoctl-ro/ca.pem",
                FileChangeKind::Added
            ),
            (
                "/etc/calico/certs/calicoctl-ro/cert.pem",
                FileChangeKind::Added
            ),
            (
                "/etc/calico/certs/calicoctl-ro/key.pem",
                FileChangeKind::Added
            ),
        ]
    );
    assert!(
        a.files
            .iter()
            .all(|f| f.hash_planned.as_deref().is_some_and(|h| h.len() == 64))
    );
    assert_eq!(a.restart, ["calico-felix.service"]);

    // The direct plan, which knows only the named nodes, would delete worker-1: the same shape.
    let direct = server
        .cli(&["plan", "--direct", "--policy", &edited, "--json"])
        .expect("plan --direct");
    let direct: FleetPlan = serde_json::from_slice(&direct.stdout).expect("direct JSON");
    assert_eq!(direct.source, PlanSource::Direct);
    assert!(!direct.nodes_known && direct.nodes.is_empty());
    assert!(
        direct
            .rbac
            .changes
            .iter()
            .any(|c| c.op == "delete_user" && c.user.as_deref() == Some("calico-node.worker-1")),
        "{:?}",
        direct.rbac.changes
    );

    // A bad candidate: refused with its file and line; nothing changed.
    let bad = server.dir().join("bad-policy.toml");
    let bad_text = policy(&endpoint, "\"calico-node\", \"no-such-component\"", "");
    std::fs::write(&bad, &bad_text).expect("write");
    let bad = bad.display().to_string();
    let line = 1 + bad_text
        .lines()
        .position(|l| l.contains("no-such-component"))
        .expect("line");
    let refused = server.cli(&["plan", "--policy", &bad]).expect("plan bad");
    let said = describe(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("{bad}:{line}")),
        "no file:line in\n{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(said.contains("invalid_policy"), "{said}");

    // Too large for the admin API: refused before anything is sent.
    let huge = server.dir().join("huge-policy.toml");
    let padding = format!("# {}\n", "x".repeat(1000)).repeat(80);
    std::fs::write(&huge, format!("{live}{padding}")).expect("write");
    let refused = server
        .cli(&["plan", "--policy", &huge.display().to_string()])
        .expect("plan huge");
    let said = describe(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("too large to send to the server"), "{said}");
    assert!(said.contains("--direct"), "{said}");

    // The server's own limit holds for a request the CLI did not make.
    let url = format!("{}{}", server.url(), calseg_api::paths::ADMIN_PLAN);
    let oversized = serde_json::json!({ "candidate": { "name": "p.toml", "text": padding } });
    // The server answers 413 as soon as the body passes the limit and closes the connection:
    // the client reads that answer, or (if it was still writing) finds the connection closed.
    // Either way the request was refused; the calls below show the server serving on.
    match call(
        admin_client(&server)
            .expect("admin")
            .post(&url)
            .json(&oversized),
    )
    .await
    {
        Ok(answer) => assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}"),
        Err(error) => {
            let text = format!("{error:#}");
            assert!(
                text.contains("Broken pipe") || text.contains("Connection reset"),
                "neither a 413 nor a closed connection: {text}"
            );
        }
    }

    // A node's certificate is not an administrator's.
    let body = serde_json::json!({ "candidate": { "name": "p.toml", "text": live } });
    let answer = call(node_a.client().expect("client").post(&url).json(&body))
        .await
        .expect("call");
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(answer.kind(), "not_admin", "{answer:?}");
    // The admin certificate is (the route itself works).
    let answer = call(admin_client(&server).expect("admin").post(&url).json(&body))
        .await
        .expect("call");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");

    // Nothing changed: etcd, the served manifests, the policy in force and its revision.
    assert_eq!(etcd.auth_snapshot().await.expect("snapshot"), etcd_before);
    assert_eq!(
        (served(&node_a).await, served(&worker).await),
        served_before
    );
    assert_eq!(
        server.rollout_status().expect("status").policy_revision,
        revision_before
    );
    assert_eq!(
        std::fs::read_to_string(server.policy_path()).expect("read"),
        live
    );
    let in_force = server.cli(&["plan"]).expect("plan");
    assert_eq!(in_force.status.code(), Some(0), "{}", describe(&in_force));
    // The candidates were not logged.
    let log = server.log();
    assert!(!log.contains("fleet-plan-marker"), "{log}");
    assert!(!log.contains("calico/ipam"), "{log}");

    // The plan told the truth: once the edit is reloaded (a rollout in waves, node-a the
    // canary), node-a is served the planned revision and holds its new grants, worker-1 is
    // served what it had, and only worker-1's new grant waits, for its wave (the canary's
    // health never comes: these nodes do not report).
    let predicted = a.revision_planned.clone().expect("planned revision");
    std::fs::copy(&edited, server.policy_path()).expect("copy");
    server.reload().expect("SIGHUP");
    let waiting = "Plan: 1 permissions to grant.\n  + role calseg.calico-node.worker-1: grant \
                   readwrite prefix /calico/ipam/v2/host/worker-1/\nSummary: 1 etcd RBAC \
                   change(s); 0 of 2 enrolled node(s) change";
    let mut last = String::new();
    for _ in 0..100 {
        let again = server.cli(&["plan", "--policy", &edited]).expect("plan");
        last = describe(&again);
        if again.status.code() == Some(2) && last.contains(waiting) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(last.contains(waiting), "never got there:\n{last}");
    assert_eq!(served(&node_a).await, predicted);
    assert_eq!(served(&worker).await, served_before.1);
}
