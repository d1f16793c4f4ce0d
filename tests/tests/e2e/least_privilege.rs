//! Issue 15 end to end: the shipped example policy (narrowed per-node profiles) on a real etcd
//! with six nodes. After `calseg-server datastore init`, the Calico access replay runs clean
//! with every node's identity; every cross-node write of the node-scoped key table is denied
//! to every identity; `exposure` says exactly which rows are shared and why; and a policy whose
//! node grant a shared grant shadows is refused by `check` and by a reload.

use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const R3: &str = "/calico/resources/v3/projectcalico.org";
/// node1 and node10 share a name prefix: the trailing-slash rule is what keeps them apart.
const NODES: [&str; 6] = ["node1", "node2", "node3", "node4", "node5", "node10"];

/// The Calico build the replay plays, as `calico-node -v` would print it.
const CALICO_RELEASE: &str = "v3.29.3";

/// server/policy.example.toml, pointed at the test's etcd, naming the test's nodes, and telling
/// `datastore init` the running Calico release.
fn example_policy(endpoint: &str) -> String {
    let example = include_str!("../../../server/policy.example.toml");
    let names = NODES
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let endpoints = example
        .lines()
        .find(|l| l.starts_with("endpoints = "))
        .expect("the example names endpoints");
    let policy = example
        .replace(endpoints, &format!("endpoints = [\"{endpoint}\"]"))
        .replace("match = \"worker-*\"", &format!("names = [{names}]"))
        + &format!("\n[datastore]\ncalico_release = \"{CALICO_RELEASE}\"\n");
    assert!(
        policy.contains("grants = \"calico-node-per-node\""),
        "{policy}"
    );
    policy
}

/// The node-scoped keys of the reference's key table, for `node`.
fn node_keys(node: &str) -> Vec<String> {
    vec![
        format!("{R3}/nodes/{node}"),
        format!("{R3}/felixconfigurations/node.{node}"),
        format!("/calico/felix/v1/host/{node}/endpoint/hep1"),
        format!("/calico/felix/v2/no-region/host/{node}/status"),
        format!("/calico/ipam/v2/host/{node}/ipv4/block/10.65.0.0-26"),
    ]
}

/// Waits until the server's reconciler has created every node's users.
async fn wait_for_users(etcd: &EtcdCluster, users: &[String]) {
    let mut root = etcd.root_client().await.expect("root client");
    for _ in 0..150 {
        let listed = root.user_list().await.expect("user list");
        if users.iter().all(|u| listed.users().contains(u)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server did not create {users:?}");
}

/// Runs the Calico access replay once as `user` claiming to be `node`.
fn replay(etcd: &EtcdCluster, dir: &Path, user: &str, node: &str) -> std::process::Output {
    let identity = etcd.mint_client(user).expect("client certificate");
    let files = identity
        .write_files(dir, user, &etcd.ca().cert_pem)
        .expect("write the identity");
    Command::new(calseg_tests::bins::path("calico-replay"))
        .arg("once")
        .env_clear()
        .env("DATASTORE_TYPE", "etcdv3")
        .env("ETCD_ENDPOINTS", etcd.endpoints().join(","))
        .env("ETCD_CA_CERT_FILE", &files.ca)
        .env("ETCD_CERT_FILE", &files.cert)
        .env("ETCD_KEY_FILE", &files.key)
        .env("NODENAME", node)
        // As Calico's bare-metal env file sample does; `datastore init` made the pool.
        .env("NO_DEFAULT_POOLS", "true")
        .env("CALICO_VERSION", CALICO_RELEASE)
        .output()
        .expect("run calico-replay")
}

#[tokio::test]
async fn the_example_policy_confines_every_node_to_its_own_keys() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &example_policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let users: Vec<String> = NODES
        .iter()
        .flat_map(|n| [format!("calico-node.{n}"), format!("cni-plugin.{n}")])
        .collect();
    wait_for_users(&etcd, &users).await;

    // Before the singletons exist, a node identity cannot create them: the replay fails.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let early = replay(&etcd, scratch.path(), "calico-node.node1", "node1");
    assert!(
        !early.status.success(),
        "the replay created cluster-wide objects with a node identity:\n{}",
        String::from_utf8_lossy(&early.stdout)
    );

    let init = server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    assert!(init.contains("create"), "{init}");

    for node in NODES {
        let out = replay(&etcd, scratch.path(), &format!("calico-node.{node}"), node);
        assert!(
            out.status.success(),
            "the replay failed for {node}:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Every identity is denied every other node's node-scoped keys.
    let mut checked = 0;
    for user in &users {
        let (_, own) = user.split_once('.').unwrap();
        let identity = etcd.mint_client(user).expect("client certificate");
        let mut client = etcd.client_as(&identity).await.expect("client");
        for other in NODES.iter().filter(|n| **n != own) {
            for key in node_keys(other) {
                let put = client.put(key.as_str(), "forged", None).await;
                let error = put.expect_err(&format!("{user} wrote {key}"));
                assert!(
                    error.to_string().contains("permission denied"),
                    "{user} on {key}: {error}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, users.len() * (NODES.len() - 1) * 5);

    let exposure = server
        .cli_ok(&["exposure", "--component", "calico-node"])
        .expect("exposure");
    // What calico-node.node1 reaches beyond its own keys: reads, and the rows Calico's design
    // shares, each with its reason; no write on another node's keys.
    let others = "admin1, admin2, node10, node2, node3, node4, node5";
    let expected = [
        "calico-node.node1 (calico-node on node1)".to_owned(),
        "  read   /calico/ipam/v2/assignment/  all keys, shared by design: any node may claim or borrow from a Calico IPAM block".to_owned(),
        "  write  /calico/ipam/v2/assignment/  all keys, shared by design: any node may claim or borrow from a Calico IPAM block".to_owned(),
        "  read   /calico/ipam/v2/handle/  all keys, shared by design: IPAM handles are keyed by workload or tunnel, not by node".to_owned(),
        "  write  /calico/ipam/v2/handle/  all keys, shared by design: IPAM handles are keyed by workload or tunnel, not by node".to_owned(),
        format!("  read   {R3}/  all keys, shared by design: Felix and confd list and watch whole resource prefixes"),
        format!("  read   {R3}/felixconfigurations/node.{{node}}  all keys of {others}, by design: Felix and confd list and watch whole resource prefixes"),
        format!("  read   {R3}/nodes/{{node}}  all keys of {others}, by design: Felix and confd list and watch whole resource prefixes"),
        format!("  write  {R3}/tiers/{{name}}  some keys, shared by design: Calico 3.29+ creates its tiers with a transaction at every start, and etcd checks write on that transaction even when the tier exists"),
        format!("  read   {R3}/workloadendpoints/  all keys, shared by design: workload endpoints are keyed by namespace first: no per-node prefix exists"),
    ];
    let block: Vec<&str> = exposure
        .lines()
        .skip_while(|l| !l.starts_with("calico-node.node1 "))
        .take_while(|l| l.starts_with("calico-node.node1 ") || l.starts_with("  "))
        .collect();
    assert_eq!(block, expected, "{exposure}");
    for identity in exposure.lines().filter(|l| l.starts_with("  write")) {
        assert!(
            identity.contains("shared by design"),
            "a write beyond the node's own keys that is not shared by design: {identity}"
        );
    }

    // A node identity writes no cluster-wide singleton and no policy.
    let identity = etcd.mint_client("calico-node.node2").unwrap();
    let mut client = etcd.client_as(&identity).await.unwrap();
    for key in [
        format!("{R3}/clusterinformations/default"),
        format!("{R3}/felixconfigurations/default"),
        format!("{R3}/ippools/default-ipv4-ippool"),
        format!("{R3}/globalnetworkpolicies/allow-all"),
    ] {
        assert!(
            client.put(key.as_str(), "{}", None).await.is_err(),
            "calico-node.node2 wrote {key}"
        );
    }
}

#[tokio::test]
async fn a_shadowed_node_grant_is_refused_by_check_and_by_a_reload() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let good = example_policy(&etcd.endpoint(0));
    let server = ServerProcess::start(&etcd, &good, "")
        .await
        .expect("server");
    // The whole policy applied, not only its first user: a snapshot taken while the reconciler
    // was still granting roles once read `calico-node.node1` with none (CI, under load).
    server.wait_rbac_applied().await.expect("RBAC applied");
    let before = etcd.auth_snapshot().await.expect("auth snapshot");

    // Calico's published table plus a per-node felix grant: the pattern that narrows nothing.
    let shadowed = good.replace(
        "grants = \"calico-node-per-node\"",
        "grants = \"calico-node\"\nnode_grants = [ { prefix = \"/calico/felix/v1/host/{node}/\", access = \"readwrite\" } ]",
    );
    let file = server.dir().join("shadowed.toml");
    std::fs::write(&file, &shadowed).unwrap();
    let check = server
        .cli(&["check", "--policy", file.to_str().unwrap()])
        .expect("run check");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "check accepted:\n{stderr}");
    let line = shadowed
        .lines()
        .position(|l| l.starts_with("node_grants = [ { prefix = \"/calico/felix/v1/host/"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("shadowed.toml:{line}:17: error: component calico-node: node grant readwrite /calico/felix/v1/host/{{node}}/ narrows nothing")),
        "{stderr}"
    );
    assert!(stderr.contains("calico-node-per-node"), "{stderr}");

    // The running server keeps its policy when the file is replaced with the shadowed one.
    std::fs::write(server.policy_path(), &shadowed).unwrap();
    server.reload().expect("SIGHUP");
    let mut log = String::new();
    for _ in 0..50 {
        log = server.log();
        if log.contains("policy reload refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(log.contains("policy reload refused"), "{log}");
    assert!(log.contains("narrows nothing"), "{log}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(etcd.auth_snapshot().await.unwrap(), before, "etcd changed");
}
