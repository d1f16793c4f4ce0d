//! Issue 3 end to end: `calseg-server plan/apply` (the real binary) against a real etcd with
//! client-certificate auth, and certificates whose CN is the calseg user, checked by etcd itself.

use calseg_tests::bins;
use calseg_tests::etcd::{EtcdCluster, EtcdOptions};
use etcd_client::{Permission, UserAddOptions};
use std::path::{Path, PathBuf};
use std::process::Output;

const R3: &str = "/calico/resources/v3/projectcalico.org";

/// Calico's latest calico-node table with felix status narrowed to each node's own keys.
fn policy_text(endpoint: &str, nodes: &[&str]) -> String {
    let names = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"calico_version = "3.29"

[etcd]
endpoints = ["{endpoint}"]

[components.calico-node]
grants = [
    {{ prefix = "/calico/ipam/v2/", access = "readwrite" }},
    {{ prefix = "{R3}/felixconfigurations/", access = "readwrite" }},
    {{ prefix = "{R3}/nodes/", access = "readwrite" }},
    {{ prefix = "{R3}/workloadendpoints/", access = "readwrite" }},
    {{ prefix = "{R3}/clusterinformations/", access = "readwrite" }},
    {{ prefix = "{R3}/ippools/", access = "readwrite" }},
    {{ prefix = "{R3}/tiers/", access = "readwrite" }},
    {{ prefix = "{R3}/", access = "read" }},
]
node_grants = [
    {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }},
    {{ prefix = "/calico/felix/v2/no-region/host/{{node}}/", access = "readwrite" }},
]
restart = ["calico-node.service"]

[components.calicoctl-ro]
grants = "calicoctl-read-only"

[[hosts]]
names = [{names}]
components = ["calico-node", "calicoctl-ro"]
"#
    )
}

/// A policy file and the etcd it applies to.
struct Setup {
    etcd: EtcdCluster,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let etcd = EtcdCluster::start().await.expect("start etcd");
        Self {
            etcd,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write_policy(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write policy");
        path
    }

    fn policy_for(&self, nodes: &[&str]) -> PathBuf {
        self.write_policy("policy.toml", &policy_text(&self.etcd.endpoint(0), nodes))
    }

    /// Runs `calseg-server <command> --policy <policy>` as etcd's root.
    fn server(&self, command: &str, policy: &Path, extra: &[&str]) -> Output {
        bins::server_direct(command, policy, self.etcd.root_files())
            .args(extra)
            .output()
            .expect("run calseg-server")
    }
}

/// Exit status, stdout and stderr, for assertion messages.
fn text(output: &Output) -> String {
    calseg_tests::agent_host::describe(output)
}

async fn can_put(etcd: &EtcdCluster, cn: &str, key: &str) -> Result<(), String> {
    let identity = etcd.mint_client(cn).expect("mint");
    let mut client = etcd.client_as(&identity).await.expect("client");
    client
        .put(key, "v", None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn can_get(etcd: &EtcdCluster, cn: &str, key: &str) -> Result<(), String> {
    let identity = etcd.mint_client(cn).expect("mint");
    let mut client = etcd.client_as(&identity).await.expect("client");
    client
        .get(key, None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn assert_denied(outcome: Result<(), String>, what: &str) {
    match outcome {
        Err(message) if message.contains("permission denied") => {}
        other => panic!("{what}: expected permission denied, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_gives_each_identity_exactly_its_policy_and_a_second_apply_finds_nothing() {
    let setup = Setup::new().await;
    let etcd = &setup.etcd;
    // Things calseg did not create must survive every apply untouched.
    let mut root = etcd.root_client().await.expect("root");
    root.role_add("handmade").await.expect("role");
    root.role_grant_permission("handmade", Permission::read("/other/").with_prefix())
        .await
        .expect("grant");
    root.user_add("someone", "", Some(UserAddOptions::new().with_no_pwd()))
        .await
        .expect("user");
    root.user_grant_role("someone", "handmade")
        .await
        .expect("bind");
    let foreign_before = etcd.auth_snapshot().await.expect("snapshot");

    let policy = setup.policy_for(&["node1", "node2", "node3"]);
    let plan = setup.server("plan", &policy, &[]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(shown.contains("+ user calico-node.node1"), "{shown}");
    assert!(
        shown.contains(
            "+ role calseg.calico-node.node2: grant readwrite prefix /calico/felix/v1/host/node2/"
        ),
        "{shown}"
    );

    let apply = setup.server("apply", &policy, &[]);
    assert!(apply.status.success(), "{}", text(&apply));

    let again = setup.server("plan", &policy, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("No changes"));
    let apply_again = setup.server("apply", &policy, &[]);
    assert!(apply_again.status.success(), "{}", text(&apply_again));
    assert!(String::from_utf8_lossy(&apply_again.stdout).contains("No changes"));

    let node1 = "calico-node.node1";
    can_put(etcd, node1, "/calico/felix/v1/host/node1/status")
        .await
        .expect("own felix key");
    can_put(
        etcd,
        node1,
        "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26",
    )
    .await
    .expect("ipam");
    can_get(
        etcd,
        node1,
        &format!("{R3}/globalnetworkpolicies/default.deny"),
    )
    .await
    .expect("read R3");
    assert_denied(
        can_put(
            etcd,
            node1,
            &format!("{R3}/globalnetworkpolicies/default.deny"),
        )
        .await,
        "calico-node writing a global network policy",
    );
    assert_denied(
        can_put(etcd, node1, "/calico/felix/v1/host/node2/status").await,
        "node1 writing node2's felix keys",
    );
    assert_denied(
        can_put(etcd, node1, "/calico/felix/v1/host/node10/status").await,
        "node1 writing node10's felix keys (prefix must end in /)",
    );
    let ro = "calicoctl-ro.node1";
    can_get(etcd, ro, &format!("{R3}/ippools/default"))
        .await
        .expect("read-only reads");
    assert_denied(
        can_put(etcd, ro, &format!("{R3}/ippools/default")).await,
        "read-only writing",
    );

    // calseg changed nothing it does not own.
    let after = etcd.auth_snapshot().await.expect("snapshot");
    for line in foreign_before.lines().filter(|l| {
        l.contains("someone")
            || l.contains("handmade")
            || l.starts_with("user root")
            || l.starts_with("role root")
    }) {
        assert!(
            after.contains(line),
            "foreign entry changed: {line}\n{after}"
        );
    }
}

#[tokio::test]
async fn a_node_removed_from_the_policy_loses_access_at_the_next_apply() {
    let setup = Setup::new().await;
    let etcd = &setup.etcd;
    let three = setup.policy_for(&["node1", "node2", "node3"]);
    assert!(setup.server("apply", &three, &[]).status.success());
    can_put(
        etcd,
        "calico-node.node3",
        "/calico/felix/v1/host/node3/status",
    )
    .await
    .expect("before");

    let two = setup.policy_for(&["node1", "node2"]);
    let plan = setup.server("plan", &two, &[]);
    let shown = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(shown.contains("- user calico-node.node3"), "{shown}");
    assert!(shown.contains("- role calseg.calico-node.node3"), "{shown}");
    assert!(setup.server("apply", &two, &[]).status.success());

    // The same certificate, still valid for weeks, is refused at once.
    assert_denied(
        can_get(etcd, "calico-node.node3", &format!("{R3}/nodes/node3")).await,
        "removed node reading",
    );
    can_put(
        etcd,
        "calico-node.node2",
        "/calico/felix/v1/host/node2/status",
    )
    .await
    .expect("others keep access");
}

#[tokio::test]
async fn hand_made_drift_shows_in_plan_and_apply_repairs_it() {
    let setup = Setup::new().await;
    let etcd = &setup.etcd;
    let policy = setup.policy_for(&["node1", "node2"]);
    assert!(setup.server("apply", &policy, &[]).status.success());
    let clean = etcd.auth_snapshot().await.expect("snapshot");

    let mut root = etcd.root_client().await.expect("root");
    // Over-grant: everything under /calico/ to the shared role, and root to a node user.
    root.role_grant_permission(
        "calseg.calico-node",
        Permission::read_write("/calico/").with_prefix(),
    )
    .await
    .expect("drift grant");
    root.user_grant_role("calico-node.node1", "root")
        .await
        .expect("drift bind");
    // Under-grant: a node loses its own felix prefix.
    root.role_revoke_permission(
        "calseg.calico-node.node2",
        "/calico/felix/v1/host/node2/",
        Some(etcd_client::RoleRevokePermissionOptions::new().with_prefix()),
    )
    .await
    .expect("drift revoke");

    let plan = setup.server("plan", &policy, &["--json"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let ops: Vec<String> = json["rbac"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(ops.len(), 3, "{ops:#?}");
    assert!(
        ops.iter()
            .any(|o| o.contains("revoke_permission") && o.contains("\"/calico/\"")),
        "{ops:#?}"
    );
    assert!(
        ops.iter()
            .any(|o| o.contains("revoke_role") && o.contains("root")),
        "{ops:#?}"
    );
    assert!(
        ops.iter()
            .any(|o| o.contains("grant_permission") && o.contains("host/node2/")),
        "{ops:#?}"
    );

    assert!(setup.server("apply", &policy, &[]).status.success());
    assert_eq!(etcd.auth_snapshot().await.expect("snapshot"), clean);
    assert_eq!(setup.server("plan", &policy, &[]).status.code(), Some(0));
}

#[tokio::test]
async fn preflight_refuses_auth_disabled_and_non_root_credentials() {
    let etcd = EtcdCluster::start_with(EtcdOptions {
        members: 1,
        auth_disabled: true,
        ..EtcdOptions::default()
    })
    .await
    .expect("start etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, policy_text(&etcd.endpoint(0), &["node1"])).expect("write");
    let files = etcd.root_files();
    let run = |extra: &[&str]| {
        bins::server_direct("apply", &policy, files)
            .args(extra)
            .output()
            .expect("run")
    };
    let before = etcd.auth_snapshot().await.expect("snapshot");
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("etcd auth is not enabled"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        etcd.auth_snapshot().await.expect("snapshot"),
        before,
        "changed while refusing"
    );
    let allowed = run(&["--allow-auth-disabled"]);
    assert!(allowed.status.success(), "{}", text(&allowed));

    // With auth on, an identity without the root role is refused plainly.
    let setup = Setup::new().await;
    let policy = setup.policy_for(&["node1"]);
    let weak = setup.etcd.mint_client("not-root").expect("mint");
    let weak_files = weak
        .write_files(
            &setup.dir.path().join("weak"),
            "weak",
            &setup.etcd.ca().cert_pem,
        )
        .expect("files");
    let output = bins::server_direct("plan", &policy, &weak_files)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("root role"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn an_apply_cut_off_by_etcd_dying_is_finished_by_the_next_without_over_granting() {
    let mut setup = Setup::new().await;
    let nodes: Vec<String> = (0..150).map(|i| format!("worker-{i}")).collect();
    let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let policy = setup.policy_for(&names);
    let files = setup.etcd.root_files().clone();
    let mut child = bins::server_direct("apply", &policy, &files)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn apply");
    // Let it get going, then take etcd away under it.
    let mut roles_seen = 0;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut root = setup.etcd.root_client().await.expect("root");
        roles_seen = root.role_list().await.expect("roles").roles().len();
        if roles_seen > 20 {
            break;
        }
    }
    setup.etcd.stop_member(0);
    let status = child.wait().expect("wait");
    assert!(
        !status.success(),
        "apply should fail once etcd is gone (saw {roles_seen} roles)"
    );

    setup.etcd.start_member(0).await.expect("etcd back");
    // What is there grants nothing beyond the policy: the plan to finish only adds.
    let plan = setup.server("plan", &policy, &["--json"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("JSON");
    for change in json["rbac"]["changes"].as_array().expect("changes") {
        let op = change["op"].as_str().unwrap_or_default();
        assert!(
            [
                "create_role",
                "grant_permission",
                "create_user",
                "grant_role"
            ]
            .contains(&op),
            "interrupted apply left something to take away: {change}"
        );
    }
    let finish = setup.server("apply", &policy, &[]);
    assert!(finish.status.success(), "{}", text(&finish));
    assert_eq!(setup.server("plan", &policy, &[]).status.code(), Some(0));
}
