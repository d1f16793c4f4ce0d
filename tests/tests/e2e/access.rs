//! Issue 15, item 4 end to end: `calseg-server can-i`, `access` and `exposure` (the real
//! binary) read a real etcd's live roles, and `can-i` answers what etcd itself does when the
//! user's certificate tries the request.

use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use etcd_client::{Client, DeleteOptions, GetOptions, Permission, UserAddOptions};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Output;

const R3: &str = "/calico/resources/v3/projectcalico.org";
const MARKER: &str = "calseg-managed";

/// An etcd, and a policy naming it (the commands take their endpoints and components from it).
struct Setup {
    etcd: EtcdCluster,
    policy: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let etcd = EtcdCluster::start().await.expect("start etcd");
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join("policy.toml");
        let text = format!(
            r#"calico_version = "3.29"

[etcd]
endpoints = ["{}"]

[components.calico-node]
grants = "calico-node"

[[hosts]]
names = ["node1", "node2", "node10"]
components = ["calico-node"]
"#,
            etcd.endpoint(0)
        );
        std::fs::write(&policy, text).expect("write policy");
        Self {
            etcd,
            policy,
            _dir: dir,
        }
    }

    /// `calseg-server COMMAND ARGS...` against the etcd, as its root.
    fn cli(&self, command: &str, args: &[&str]) -> Output {
        bins::server_direct(command, &self.policy, self.etcd.root_files())
            .args(args)
            .output()
            .expect("run calseg-server")
    }

    /// The JSON answer of a command that exits with `code`.
    fn json(&self, command: &str, args: &[&str], code: i32) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.cli(command, &args);
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }
}

/// Exit status, stdout and stderr, for assertion messages.
fn text(output: &Output) -> String {
    calseg_tests::agent_host::describe(output)
}

/// Creates `role` with `permissions` and gives it to `user` (created when missing).
async fn grant(root: &mut Client, user: &str, role: &str, permissions: Vec<Permission>) {
    if root.role_get(role).await.is_err() {
        root.role_add(role).await.expect("role add");
    }
    for permission in permissions {
        root.role_grant_permission(role, permission)
            .await
            .expect("grant permission");
    }
    if root.user_get(user).await.is_err() {
        root.user_add(user, "", Some(UserAddOptions::new().with_no_pwd()))
            .await
            .expect("user add");
    }
    root.user_grant_role(user, role).await.expect("grant role");
}

/// What etcd does when `client`'s user tries the request: read = get (a range get with
/// `prefix`), write = put (a range delete with `prefix`).
async fn etcd_allows(client: &mut Client, write: bool, key: &str, prefix: bool) -> bool {
    let outcome = match (write, prefix) {
        (false, false) => client.get(key, None).await.map(drop),
        (false, true) => client
            .get(key, Some(GetOptions::new().with_prefix()))
            .await
            .map(drop),
        (true, false) => client.put(key, "v", None).await.map(drop),
        (true, true) => client
            .delete(key, Some(DeleteOptions::new().with_prefix()))
            .await
            .map(drop),
    };
    match outcome {
        Ok(()) => true,
        Err(error) if error.to_string().contains("permission denied") => false,
        Err(error) => panic!("etcd failed otherwise on {key} (write {write}): {error}"),
    }
}

/// Users with exact keys, prefixes (with and without the trailing slash), a from-key range,
/// ranges that cover a prefix only together, and a prefix covered only in part.
async fn grid_users(setup: &Setup) {
    let mut root = setup.etcd.root_client().await.expect("root");
    let alice = "alice";
    let roles: Vec<(&str, Permission)> = vec![
        (
            "t-exact",
            Permission::read_write(format!("{R3}/nodes/node1")),
        ),
        (
            "t-prefix",
            Permission::read_write("/calico/felix/v1/host/node1/").with_prefix(),
        ),
        (
            "t-noslash",
            Permission::write("/calico/ipam/v2/host/node1").with_prefix(),
        ),
        ("t-fromkey", Permission::read("/zz/").with_from_key()),
        ("t-m-a", Permission::read("/m/").with_range_end("/m/5")),
        ("t-m-b", Permission::read("/m/5").with_range_end("/m0")),
        ("t-p", Permission::read("/p/a").with_prefix()),
    ];
    for (role, permission) in roles {
        grant(&mut root, alice, role, vec![permission]).await;
    }
    grant(
        &mut root,
        "bob",
        "t-calico-read",
        vec![Permission::read("/calico/").with_prefix()],
    )
    .await;
    root.user_add("boss", "", Some(UserAddOptions::new().with_no_pwd()))
        .await
        .expect("user add");
    root.user_grant_role("boss", "root")
        .await
        .expect("root role");
}

#[tokio::test]
async fn can_i_answers_what_etcd_does_for_every_user_access_and_key() {
    let setup = Setup::new().await;
    grid_users(&setup).await;
    let nodes1 = format!("{R3}/nodes/node1");
    let nodes10 = format!("{R3}/nodes/node10");
    let keys: Vec<(&str, bool)> = vec![
        (&nodes1, false),
        (&nodes1, true),
        (&nodes10, false),
        ("/calico/felix/v1/host/node1/", true),
        ("/calico/felix/v1/host/node1/status", false),
        ("/calico/felix/v1/host/node10/status", false),
        ("/calico/felix/v1/host/node1", false),
        ("/calico/felix/v1/host/", true),
        ("/calico/ipam/v2/host/node10/ipv4/block/10.0.0.0-26", false),
        ("/calico/ipam/v2/host/node1", true),
        ("/calico/ipam/v2/host/node1/", true),
        ("/calico/ipam/v2/host/node2/x", false),
        ("/zz/", false),
        ("/zzz", false),
        ("/zz", false),
        ("/zz/", true),
        ("/zz", true),
        ("/zz/a/b", true),
        ("/m/", true),
        ("/m", true),
        ("/m/5", false),
        ("/m/5", true),
        ("/p/", true),
        ("/p/a/x", false),
        ("/p/a", true),
        ("/calico/", true),
        ("/other", false),
    ];
    let mut disagreements = Vec::new();
    let mut answers = std::collections::BTreeMap::new();
    for user in ["alice", "bob", "boss"] {
        let identity = setup.etcd.mint_client(user).expect("mint");
        let mut client = setup.etcd.client_as(&identity).await.expect("client");
        for (key, prefix) in &keys {
            for write in [false, true] {
                let truth = etcd_allows(&mut client, write, key, *prefix).await;
                let mut args = vec![user, if write { "write" } else { "read" }, key];
                if *prefix {
                    args.push("--prefix");
                }
                let out = setup.cli("can-i", &args);
                let said = match out.status.code() {
                    Some(0) => true,
                    Some(1) => false,
                    _ => panic!("can-i {args:?}: {}", text(&out)),
                };
                let first = String::from_utf8_lossy(&out.stdout);
                assert!(
                    first.starts_with(if said { "yes: " } else { "no: " }),
                    "{args:?}: {}",
                    text(&out)
                );
                if said != truth {
                    disagreements.push(format!("{args:?}: can-i {said}, etcd {truth}"));
                }
                answers.insert((user, write, *key, *prefix), truth);
            }
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    // The grid is not trivial: etcd said both yes and no to alice and bob, yes to boss.
    let count = |user: &str, allowed: bool| {
        answers
            .iter()
            .filter(|((u, ..), a)| *u == user && **a == allowed)
            .count()
    };
    assert!(count("alice", true) >= 10 && count("alice", false) >= 10);
    assert!(count("bob", true) >= 5 && count("bob", false) >= 5);
    assert_eq!(count("boss", false), 0);
    // The cases the grid is about, as etcd answered them.
    for (case, expected) in [
        (
            ("alice", false, "/calico/felix/v1/host/node10/status", false),
            false,
        ),
        (
            (
                "alice",
                true,
                "/calico/ipam/v2/host/node10/ipv4/block/10.0.0.0-26",
                false,
            ),
            true,
        ),
        (("alice", false, nodes1.as_str(), true), false),
        (("alice", false, "/zzz", false), true),
        (("alice", false, "/zz", true), false),
        (("alice", false, "/m/", true), true),
        (("alice", false, "/p/", true), false),
    ] {
        assert_eq!(answers[&case], expected, "{case:?}");
    }

    let json = setup.json("can-i", &["alice", "read", "/p/", "--prefix"], 1);
    assert_eq!(
        json,
        json!({
            "user": "alice", "access": "read", "key": "/p/", "range_end": "/p0",
            "kind": "prefix", "allowed": false, "root": false, "roles": ["t-p"],
            "uncovered": [
                {"key": "/p/", "range_end": "/p/a", "kind": "range"},
                {"key": "/p/b", "range_end": "/p0", "kind": "range"},
            ],
        })
    );
    let boss = setup.cli("can-i", &["boss", "write", "/anything"]);
    assert_eq!(boss.status.code(), Some(0), "{}", text(&boss));
    assert!(String::from_utf8_lossy(&boss.stdout).contains("root role"));
}

#[tokio::test]
async fn access_lists_the_merged_ranges_with_their_roles() {
    let setup = Setup::new().await;
    grid_users(&setup).await;
    let report = setup.json("access", &["alice"], 0);
    let range = |key: &str, end: &str, kind: &str, roles: &[&str]| json!({"key": key, "range_end": end, "kind": kind, "roles": roles});
    let nodes1 = format!("{R3}/nodes/node1");
    let felix = "/calico/felix/v1/host/node1/";
    let felix_end = "/calico/felix/v1/host/node10";
    let expected = json!({
        "user": "alice",
        "root": false,
        "roles": ["t-exact", "t-fromkey", "t-m-a", "t-m-b", "t-noslash", "t-p", "t-prefix"],
        "missing_roles": [],
        "read": [
            range(felix, felix_end, "prefix", &["t-prefix"]),
            range(&nodes1, "", "key", &["t-exact"]),
            range("/m/", "/m0", "prefix", &["t-m-a", "t-m-b"]),
            range("/p/a", "/p/b", "prefix", &["t-p"]),
            range("/zz/", "\u{0}", "from_key", &["t-fromkey"]),
        ],
        "write": [
            range(felix, felix_end, "prefix", &["t-prefix"]),
            range("/calico/ipam/v2/host/node1", "/calico/ipam/v2/host/node2", "prefix", &["t-noslash"]),
            range(&nodes1, "", "key", &["t-exact"]),
        ],
    });
    assert_eq!(report, expected);

    let out = setup.cli("access", &["alice"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("  prefix /m/  from t-m-a, t-m-b\n"),
        "{shown}"
    );
    assert!(
        shown.contains("  from-key /zz/  from t-fromkey\n"),
        "{shown}"
    );

    let boss = setup.json("access", &["boss"], 0);
    assert_eq!(boss["root"], json!(true));
    let out = setup.cli("access", &["boss"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("holds etcd's root role"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_user_that_does_not_exist_is_named_and_refused() {
    let setup = Setup::new().await;
    for (command, args) in [
        ("can-i", vec!["ghost", "read", "/calico/"]),
        ("access", vec!["ghost"]),
    ] {
        let out = setup.cli(command, &args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("etcd has no user \"ghost\""),
            "{}",
            text(&out)
        );
        assert!(out.stdout.is_empty(), "{}", text(&out));
    }
    let out = setup.cli("exposure", &["--component", "felix"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such component"));
}

/// A fleet of node1, node2 and node10 made by hand in etcd: per-node roles (node1's felix
/// prefix lacks its trailing slash; node2 may also read node1's Node), one shared IPAM role.
async fn fleet(setup: &Setup) {
    let mut root = setup.etcd.root_client().await.expect("root");
    root.role_add(MARKER).await.expect("marker");
    let shared = "calseg.calico-node";
    for node in ["node1", "node2", "node10"] {
        let user = format!("calico-node.{node}");
        let felix = if node == "node1" {
            "/calico/felix/v1/host/node1".to_owned()
        } else {
            format!("/calico/felix/v1/host/{node}/")
        };
        let mut own = vec![
            Permission::read_write(format!("{R3}/nodes/{node}")),
            Permission::read_write(felix).with_prefix(),
        ];
        if node == "node2" {
            own.push(Permission::read(format!("{R3}/nodes/node1")));
        }
        grant(&mut root, &user, &format!("calseg.calico-node.{node}"), own).await;
        let ipam = Permission::read_write("/calico/ipam/v2/assignment/").with_prefix();
        grant(&mut root, &user, shared, vec![ipam]).await;
        root.user_grant_role(user.as_str(), MARKER)
            .await
            .expect("marker");
    }
    // Not calseg's (no marker role): neither an identity nor a node of the fleet.
    grant(
        &mut root,
        "calico-node.node99",
        "handmade",
        vec![Permission::read_write("/").with_prefix()],
    )
    .await;
}

#[tokio::test]
async fn exposure_names_other_nodes_keys_and_the_shared_ranges_with_reasons() {
    let setup = Setup::new().await;
    fleet(&setup).await;
    let felix = |op: &str| {
        json!({"prefix": "/calico/felix/v1/host/", "keys": "/calico/felix/v1/host/{node}/",
               "access": op, "scope": "node", "reach": "all", "nodes": ["node10"], "reason": null})
    };
    let ipam = |op: &str| {
        json!({"prefix": "/calico/ipam/v2/assignment/", "keys": "/calico/ipam/v2/assignment/",
               "access": op, "scope": "shared", "reach": "all", "nodes": [],
               "reason": "any node may claim or borrow from a Calico IPAM block"})
    };
    let node1_read = json!({
        "prefix": format!("{R3}/nodes/"), "keys": format!("{R3}/nodes/{{node}}"),
        "access": "read", "scope": "node", "reach": "all", "nodes": ["node1"],
        "reason": "Felix and confd list and watch whole resource prefixes",
    });
    let identity = |node: &str, rows: Vec<Value>| {
        json!({"user": format!("calico-node.{node}"), "component": "calico-node",
               "node": node, "root": false, "rows": rows})
    };
    let expected = json!({
        "nodes": ["node1", "node10", "node2"],
        "identities": [
            identity("node1", vec![felix("read"), felix("write"), ipam("read"), ipam("write")]),
            identity("node10", vec![ipam("read"), ipam("write")]),
            identity("node2", vec![ipam("read"), ipam("write"), node1_read]),
        ],
    });
    assert_eq!(setup.json("exposure", &[], 0), expected);
    assert_eq!(
        setup.json("exposure", &["--component", "calico-node"], 0),
        expected
    );

    let out = setup.cli("exposure", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in [
        "3 calseg identities on 3 nodes: node1, node10, node2\n",
        "calico-node.node1 (calico-node on node1)\n",
        "  write  /calico/felix/v1/host/{node}/  all keys of node10\n",
        "  write  /calico/ipam/v2/assignment/  all keys, shared by design: any node may claim or borrow from a Calico IPAM block\n",
        "  read   /calico/felix/v1/host/{node}/  all keys of node10\n",
    ] {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }

    // What exposure says node1 reaches of node10, etcd allows node1's certificate to do.
    let identity = setup.etcd.mint_client("calico-node.node1").expect("mint");
    let mut node1 = setup.etcd.client_as(&identity).await.expect("client");
    assert!(etcd_allows(&mut node1, true, "/calico/felix/v1/host/node10/", true).await);
    assert!(!etcd_allows(&mut node1, true, "/calico/felix/v1/host/node2/x", false).await);
}
