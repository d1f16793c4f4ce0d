//! Issue 15 item 5 end to end: the real `calico-replay` binary performs calico-node's and
//! Felix's etcd operations against a real etcd as narrowed per-node identities (roles and
//! users created by hand, as root, in [`fixture`]), and proves them enough for Calico: both
//! nodes succeed, and it fails, naming the key, exactly where a narrowed identity must not
//! reach (a missing cluster-wide singleton, another node's keys, a per-node prefix left out).

/// The etcd with the narrowed identities, and the replay runner.
mod fixture;

use calseg_tests::replay::datastore::Datastore;
use calseg_tests::replay::settings::Settings;
use calseg_tests::replay::version::CalicoVersion;
use etcd_client::{GetOptions, Permission, RoleRevokePermissionOptions, UserAddOptions};
use fixture::{Cluster, NODES, R3, command, felix_v2, node_role, replay_once, singletons};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn a_narrowed_per_node_identity_is_enough_for_calico_on_both_nodes() {
    let mut cluster = Cluster::start().await;
    for node in NODES {
        let identity = cluster.identity(node);
        replay_once(&cluster.env(&identity, node)).await.assert_ok();
    }
    // The operations really happened: each node's own objects exist, its status is leased.
    for node in NODES {
        let node_obj = cluster
            .value(&format!("{R3}/nodes/{node}"))
            .await
            .expect("Node written");
        assert_eq!(node_obj["metadata"]["name"], node);
        assert!(
            node_obj["spec"]["bgp"]["ipv4IPIPTunnelAddr"].is_string(),
            "{node_obj}"
        );
        let felix = cluster
            .value(&format!("{R3}/felixconfigurations/node.{node}"))
            .await
            .expect("written");
        assert_eq!(felix["spec"]["defaultEndpointToHostAction"], "Return");
        let status = format!("{}status", felix_v2(node));
        assert_ne!(
            cluster.lease_of(&status).await,
            0,
            "{status} is not on a lease"
        );
        assert!(
            cluster
                .value(&format!("{}last_reported_status", felix_v2(node)))
                .await
                .is_some()
        );
        assert!(
            cluster
                .value(&format!("/calico/felix/v1/host/{node}/endpoint/replay-hep"))
                .await
                .is_some()
        );
        let handle = format!("/calico/ipam/v2/handle/ipip-tunnel-addr-{node}");
        assert_eq!(
            cluster.value(&handle).await.expect("handle")["deleted"],
            false
        );
        let affinities = cluster
            .root
            .get(
                format!("/calico/ipam/v2/host/{node}/"),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .expect("root list");
        let affinity: Value = serde_json::from_slice(affinities.kvs()[0].value()).expect("JSON");
        assert_eq!(affinity["state"], "confirmed");
    }
    // A restart takes the other branches (Update of the Node, Creates that find their keys):
    // still enough, still nothing cluster-wide.
    let identity = cluster.identity(NODES[0]);
    replay_once(&cluster.env(&identity, NODES[0]))
        .await
        .assert_ok();
}

#[tokio::test]
async fn a_missing_or_outdated_singleton_needs_cluster_wide_write_and_is_named() {
    let mut cluster = Cluster::start().await;
    let identity = cluster.identity(NODES[0]);
    let env = cluster.env(&identity, NODES[0]);
    for (key, value) in singletons()
        .into_iter()
        .filter(|(k, _)| !k.contains("/tiers/"))
    {
        cluster
            .root
            .delete(key.as_str(), None)
            .await
            .expect("delete singleton");
        let run = replay_once(&env).await;
        if key.ends_with("default-ipv6-ippool")
            && !std::path::Path::new("/proc/sys/net/ipv6").exists()
        {
            // calico-node creates the IPv6 pool only on a host with IPv6.
            run.assert_ok();
        } else {
            run.assert_denied(&format!("txn-create {key}"));
        }
        cluster
            .root
            .put(key.as_str(), value.to_string(), None)
            .await
            .expect("restore");
    }
    // Without IPv6 pools wanted, a missing one is no longer needed.
    let v6 = format!("{R3}/ippools/default-ipv6-ippool");
    cluster
        .root
        .delete(v6.as_str(), None)
        .await
        .expect("delete v6 pool");
    let mut no_v6 = env.clone();
    no_v6.push(("CALICO_IPV6POOL_CIDR".into(), "none".into()));
    replay_once(&no_v6).await.assert_ok();
    // Another Calico release makes every node's start-up rewrite ClusterInformation.
    let mut upgraded = env.clone();
    upgraded.retain(|(k, _)| k != "CALICO_VERSION");
    upgraded.push(("CALICO_VERSION".into(), "v3.29.4".into()));
    upgraded.push(("CALICO_IPV6POOL_CIDR".into(), "none".into()));
    replay_once(&upgraded)
        .await
        .assert_denied(&format!("txn-update {R3}/clusterinformations/default"));
}

#[tokio::test]
async fn a_node_running_with_another_nodes_name_is_refused_at_that_nodes_keys() {
    let cluster = Cluster::start().await;
    let second = cluster.identity(NODES[1]);
    replay_once(&cluster.env(&second, NODES[1]))
        .await
        .assert_ok();
    // Node 1's identity, told it is node 2: it can read node 2's Node but not write it.
    let first = cluster.identity(NODES[0]);
    replay_once(&cluster.env(&first, NODES[1]))
        .await
        .assert_denied(&format!("{R3}/nodes/{}", NODES[1]));
    // And one whose Node does not exist yet: the Create is refused just the same.
    replay_once(&cluster.env(&first, "replay-node-3"))
        .await
        .assert_denied(&format!("{R3}/nodes/replay-node-3"));
}

#[tokio::test]
async fn without_the_felix_status_prefix_the_status_report_is_refused() {
    let mut cluster = Cluster::start().await;
    let node = NODES[0];
    cluster
        .root
        .role_revoke_permission(
            node_role(node),
            felix_v2(node),
            Some(RoleRevokePermissionOptions::new().with_prefix()),
        )
        .await
        .expect("revoke felix v2");
    let identity = cluster.identity(node);
    let run = replay_once(&cluster.env(&identity, node)).await;
    run.assert_denied(&format!("put {}status", felix_v2(node)));
    assert!(run.stderr.contains("(phase 5)"), "{}", run.show());
    // The other node, whose role is whole, is unaffected.
    let other = cluster.identity(NODES[1]);
    replay_once(&cluster.env(&other, NODES[1]))
        .await
        .assert_ok();
}

#[tokio::test]
async fn run_mode_keeps_the_status_fresh_and_fails_once_its_access_is_revoked() {
    let mut cluster = Cluster::start().await;
    let mut children = Vec::new();
    for node in NODES {
        let identity = cluster.identity(node);
        let mut command = command("run", &cluster.env(&identity, node));
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        children.push(command.spawn().expect("spawn calico-replay run"));
    }
    // Both rewrite their status report (uptime grows, first_update false) on a live lease.
    for node in NODES {
        let status = format!("{}status", felix_v2(node));
        let mut fresh = None;
        for _ in 0..150 {
            if let Some(value) = cluster.value(&status).await
                && value["first_update"] == false
                && value["uptime"].as_f64().unwrap_or(0.0) > 0.0
            {
                fresh = Some(value);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(fresh.is_some(), "{status} was not refreshed within 15 s");
        assert_ne!(
            cluster.lease_of(&status).await,
            0,
            "{status} lost its lease"
        );
    }
    // Revoke node 1's status prefix: its unit would fail, naming the key.
    cluster
        .root
        .role_revoke_permission(
            node_role(NODES[0]),
            felix_v2(NODES[0]),
            Some(RoleRevokePermissionOptions::new().with_prefix()),
        )
        .await
        .expect("revoke felix v2");
    let first = children.remove(0);
    let output = tokio::time::timeout(Duration::from_secs(20), first.wait_with_output())
        .await
        .expect("calico-replay run exited within 20 s of the revocation")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("permission denied")
            && stderr.contains(&format!("{}status", felix_v2(NODES[0]))),
        "{stderr}"
    );
    // Node 2 keeps running, and stops cleanly on SIGTERM.
    let second = children.remove(0);
    let pid = second.id().expect("node 2 still runs");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let output = tokio::time::timeout(Duration::from_secs(20), second.wait_with_output())
        .await
        .expect("calico-replay run stopped within 20 s of SIGTERM")
        .expect("wait");
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_watch_etcd_refuses_is_a_permission_error_naming_the_prefix() {
    let mut cluster = Cluster::start().await;
    // An identity that may read its own status prefix only.
    cluster
        .root
        .role_add("status-only")
        .await
        .expect("role add");
    cluster
        .root
        .role_grant_permission(
            "status-only",
            Permission::read(felix_v2(NODES[0])).with_prefix(),
        )
        .await
        .expect("grant");
    cluster
        .root
        .user_add("status-only", "", Some(UserAddOptions::new().with_no_pwd()))
        .await
        .expect("user add");
    cluster
        .root
        .user_grant_role("status-only", "status-only")
        .await
        .expect("grant role");
    let cert = cluster.etcd.mint_client("status-only").expect("mint");
    let files = cert
        .write_files(
            cluster.dir.path(),
            "status-only",
            &cluster.etcd.ca().cert_pem,
        )
        .expect("files");
    let settings = Settings {
        endpoints: cluster.etcd.endpoints(),
        ca_file: files.ca,
        cert_file: files.cert,
        key_file: files.key,
        node: NODES[0].into(),
        version: CalicoVersion::parse("3.29").expect("version"),
        no_default_pools: false,
        ipv6_pool: false,
        cluster_type: String::new(),
    };
    let mut ds = Datastore::connect(&settings).await.expect("connect");
    ds.watch(&felix_v2(NODES[0]), 1)
        .await
        .expect("a permitted watch is created");
    let nodes = format!("{R3}/nodes/");
    let refused = ds
        .watch(&nodes, 1)
        .await
        .expect_err("etcd must refuse this watch");
    assert!(refused.is_permission_denied(), "{refused}");
    assert_eq!(
        (refused.operation, refused.key.as_str()),
        ("watch", nodes.as_str())
    );
}
