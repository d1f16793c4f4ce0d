//! The replay tests' fixture: a real etcd holding narrowed calico-node identities for two
//! nodes, created by hand as root (a shared role, a role per node, a user per node), the
//! cluster-wide objects an admin pre-creates, and a runner for the real `calico-replay`.

use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::pki::TlsFiles;
use etcd_client::{Client, Permission, UserAddOptions};
use serde_json::{Value, json};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

pub const R3: &str = "/calico/resources/v3/projectcalico.org";
pub const NODES: [&str; 2] = ["replay-node-1", "replay-node-2"];
/// The tiers Calico 3.29 creates at every start.
const TIERS: [&str; 2] = ["default", "adminnetworkpolicy"];
const SHARED_ROLE: &str = "calseg.calico-node";

fn user(node: &str) -> String {
    format!("calico-node.{node}")
}

pub fn node_role(node: &str) -> String {
    format!("calseg.calico-node.{node}")
}

pub fn felix_v2(node: &str) -> String {
    format!("/calico/felix/v2/no-region/host/{node}/")
}

/// A real etcd with the narrowed calico-node identities of [`NODES`] and the cluster-wide
/// singletons an admin pre-creates.
pub struct Cluster {
    pub etcd: EtcdCluster,
    /// A client authenticated as etcd's root user.
    pub root: Client,
    /// Certificate files of the identities.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Self {
        let etcd = EtcdCluster::start().await.expect("start etcd");
        let mut root = etcd.root_client().await.expect("root client");
        grant_narrowed_roles(&mut root).await;
        seed_singletons(&mut root).await;
        let dir = tempfile::tempdir().expect("tempdir");
        Self { etcd, root, dir }
    }

    /// Certificate files for `node`'s identity (CN `calico-node.<node>`).
    pub fn identity(&self, node: &str) -> TlsFiles {
        let cert = self.etcd.mint_client(&user(node)).expect("mint");
        cert.write_files(
            &self.dir.path().join(node),
            "client",
            &self.etcd.ca().cert_pem,
        )
        .expect("write cert files")
    }

    /// The environment Calico would get from calseg's `/etc/calico/calico-node.env`.
    pub fn env(&self, identity: &TlsFiles, nodename: &str) -> Vec<(String, String)> {
        [
            ("DATASTORE_TYPE", "etcdv3".to_owned()),
            ("ETCD_ENDPOINTS", self.etcd.endpoints().join(",")),
            ("ETCD_CA_CERT_FILE", identity.ca.display().to_string()),
            ("ETCD_CERT_FILE", identity.cert.display().to_string()),
            ("ETCD_KEY_FILE", identity.key.display().to_string()),
            ("NODENAME", nodename.to_owned()),
            ("CALICO_VERSION", "3.29".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub async fn value(&mut self, key: &str) -> Option<Value> {
        let response = self.root.get(key, None).await.expect("root get");
        response
            .kvs()
            .first()
            .map(|kv| serde_json::from_slice(kv.value()).expect("stored JSON"))
    }

    pub async fn lease_of(&mut self, key: &str) -> i64 {
        let response = self.root.get(key, None).await.expect("root get");
        response.kvs().first().map_or(0, |kv| kv.lease())
    }
}

/// The narrowed profile, by hand: a shared role for every node, a role per node, a user per
/// node holding both.
async fn grant_narrowed_roles(root: &mut Client) {
    root.role_add(SHARED_ROLE).await.expect("role add shared");
    let mut shared = vec![
        Permission::read(format!("{R3}/")).with_prefix(),
        Permission::read("/calico/ipam/v2/").with_prefix(),
        Permission::read_write("/calico/ipam/v2/assignment/").with_prefix(),
        Permission::read_write("/calico/ipam/v2/handle/").with_prefix(),
        Permission::read_write(format!("{R3}/workloadendpoints/")).with_prefix(),
    ];
    shared.extend(
        TIERS
            .iter()
            .map(|tier| Permission::write(format!("{R3}/tiers/{tier}"))),
    );
    for permission in shared {
        root.role_grant_permission(SHARED_ROLE, permission)
            .await
            .expect("grant shared");
    }
    for node in NODES {
        let role = node_role(node);
        root.role_add(role.as_str()).await.expect("role add node");
        for permission in [
            Permission::read_write(format!("{R3}/nodes/{node}")),
            Permission::read_write(format!("{R3}/felixconfigurations/node.{node}")),
            Permission::read_write(format!("/calico/felix/v1/host/{node}/")).with_prefix(),
            Permission::read_write(felix_v2(node)).with_prefix(),
            Permission::read_write(format!("/calico/ipam/v2/host/{node}/")).with_prefix(),
        ] {
            root.role_grant_permission(role.as_str(), permission)
                .await
                .expect("grant node");
        }
        let name = user(node);
        root.user_add(name.as_str(), "", Some(UserAddOptions::new().with_no_pwd()))
            .await
            .expect("user add");
        for role in [SHARED_ROLE.to_owned(), role] {
            root.user_grant_role(name.as_str(), role)
                .await
                .expect("user grant role");
        }
    }
}

fn resource(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "kind": kind,
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": name, "uid": format!("seeded-{name}"), "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec,
    })
}

/// The cluster-wide objects, complete, as an admin (`calseg-server datastore init`) writes
/// them once (tiers last). Both default pools: on a host with IPv6, calico-node creates an
/// IPv6 pool too when none exists.
pub fn singletons() -> Vec<(String, Value)> {
    let mut objects = vec![
        (
            format!("{R3}/clusterinformations/default"),
            resource(
                "ClusterInformation",
                "default",
                json!({"clusterGUID": "0123456789abcdef0123456789abcdef", "calicoVersion": "v3.29.3", "datastoreReady": true}),
            ),
        ),
        (
            format!("{R3}/felixconfigurations/default"),
            resource(
                "FelixConfiguration",
                "default",
                json!({"reportingInterval": "0s", "logSeverityScreen": "Info"}),
            ),
        ),
        (
            format!("{R3}/ippools/default-ipv4-ippool"),
            resource(
                "IPPool",
                "default-ipv4-ippool",
                json!({"cidr": "192.168.0.0/16", "blockSize": 26}),
            ),
        ),
        (
            format!("{R3}/ippools/default-ipv6-ippool"),
            resource(
                "IPPool",
                "default-ipv6-ippool",
                json!({"cidr": "fd00:10::/48", "blockSize": 122}),
            ),
        ),
    ];
    // IPAM's configuration, which every block claim reads and creates when missing.
    objects.push((
        "/calico/ipam/v2/config".to_owned(),
        json!({"auto_allocate_blocks": true}),
    ));
    let orders = [(1_000_000.0, "Deny"), (1_000.0, "Pass")];
    for (tier, (order, action)) in TIERS.iter().zip(orders) {
        let spec = json!({"order": order, "defaultAction": action});
        objects.push((format!("{R3}/tiers/{tier}"), resource("Tier", tier, spec)));
    }
    objects
}

async fn seed_singletons(root: &mut Client) {
    for (key, value) in singletons() {
        root.put(key, value.to_string(), None)
            .await
            .expect("seed singleton");
    }
}

pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn show(&self) -> String {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    pub fn assert_ok(&self) {
        assert!(
            self.status.success(),
            "calico-replay failed: {}",
            self.show()
        );
        let phases = self
            .stdout
            .lines()
            .filter(|l| l.starts_with("phase ") && l.contains(": ok:"))
            .count();
        assert_eq!(phases, 6, "one line per phase expected: {}", self.show());
        assert!(
            self.stdout.contains("calico-replay: ok: node"),
            "no summary: {}",
            self.show()
        );
        assert!(
            !self.stdout.contains("had to"),
            "a narrowed identity needed more: {}",
            self.show()
        );
    }

    /// Exit 1 with etcd's refusal of `key`.
    pub fn assert_denied(&self, key: &str) {
        assert_eq!(
            self.status.code(),
            Some(1),
            "expected a failure: {}",
            self.show()
        );
        assert!(
            self.stderr.contains("permission denied") && self.stderr.contains(key),
            "expected a permission error naming {key}: {}",
            self.show()
        );
    }
}

pub fn command(mode: &str, env: &[(String, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bins::path("calico-replay"));
    command
        .arg(mode)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `calico-replay once` with `env` and waits (bounded) for it.
pub async fn replay_once(env: &[(String, String)]) -> Run {
    let output = tokio::time::timeout(Duration::from_secs(60), command("once", env).output())
        .await
        .expect("calico-replay once finished within 60 s")
        .expect("run calico-replay");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
