//! Issue 15, item 3 end to end: `calseg-server datastore init` (the real binary, reading
//! server.toml's `[etcd]` identity) against a real etcd with client-certificate auth. It
//! creates each missing cluster-wide object as libcalico-go stores it, in one transaction; a
//! second run changes nothing; an object with other values is left byte for byte; `--dry-run`
//! writes nothing; an identity without write permission fails with etcd's error and writes
//! nothing; runs at once write each object once (the losers' guards fail and they read again,
//! when their reads came before the winner's write: often, not always).

use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::pki::TlsFiles;
use etcd_client::{Client, GetOptions, Permission, UserAddOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const R3: &str = "/calico/resources/v3/projectcalico.org";

/// A policy, the etcd it names, and a server.toml per identity.
struct Setup {
    etcd: EtcdCluster,
    dir: tempfile::TempDir,
    policy: PathBuf,
}

impl Setup {
    async fn new(calico_version: &str, datastore: &str) -> Self {
        let etcd = EtcdCluster::start().await.expect("start etcd");
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join("policy.toml");
        let text = format!(
            "calico_version = \"{calico_version}\"\n\n[etcd]\nendpoints = [\"{}\"]\n\n{datastore}",
            etcd.endpoint(0)
        );
        std::fs::write(&policy, text).expect("write policy");
        Self { etcd, dir, policy }
    }

    /// server.toml naming the policy and `files` as calseg's etcd identity.
    fn config(&self, name: &str, files: &TlsFiles) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "policy = {:?}\n\n[etcd]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            self.policy, files.ca, files.cert, files.key
        );
        std::fs::write(&path, text).expect("write server.toml");
        path
    }

    fn root_config(&self) -> PathBuf {
        self.config("server", self.etcd.root_files())
    }

    async fn root(&self) -> Client {
        self.etcd.root_client().await.expect("root client")
    }
}

/// `calseg-server --config CONFIG datastore init ARGS…`.
fn init(config: &Path, args: &[&str]) -> Output {
    Command::new(bins::path("calseg-server"))
        .arg("--config")
        .arg(config)
        .args(["datastore", "init"])
        .args(args)
        .output()
        .expect("run calseg-server")
}

/// Exit status, stdout and stderr, for assertion messages.
fn text(output: &Output) -> String {
    calseg_tests::agent_host::describe(output)
}

fn json_of(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

/// The stored bytes and mod revision of `key`.
async fn stored(client: &mut Client, key: &str) -> Option<(Vec<u8>, i64)> {
    let response = client.get(key, None).await.expect("get");
    response
        .kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.mod_revision()))
}

/// Every key under `prefix` with its mod revision.
async fn keys_under(client: &mut Client, prefix: &str) -> Vec<(String, i64)> {
    let response = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("list");
    response
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.mod_revision()))
        .collect()
}

/// etcd's current revision: any write anywhere moves it.
async fn revision(client: &mut Client) -> i64 {
    let response = client.get("/calseg-test/none", None).await.expect("get");
    response.header().expect("header").revision()
}

fn key(plural: &str, name: &str) -> String {
    format!("{R3}/{plural}/{name}")
}

const DATASTORE: &str = r#"[datastore]
calico_release = "v3.33.0"
ipv4_pool_cidr = "10.244.0.0/16"
ipip_mode = "Never"
vxlan_mode = "Always"
block_size = 24
as_number = 65001
node_to_node_mesh = false
log_severity = "Warning"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn init_creates_every_missing_object_once_and_a_dry_run_writes_nothing() {
    let setup = Setup::new("3.33", DATASTORE).await;
    let config = setup.root_config();
    let mut root = setup.root().await;
    let expected = [
        (
            "clusterinformations",
            "default",
            "ClusterInformation",
            json!({"clusterType": "bgp", "calicoVersion": "v3.33.0", "datastoreReady": true}),
        ),
        (
            "felixconfigurations",
            "default",
            "FelixConfiguration",
            json!({"logSeverityScreen": "Warning", "reportingInterval": "0s",
                   "bpfConnectTimeLoadBalancing": "TCP",
                   "bpfHostNetworkedNATWithoutCTLB": "Enabled", "floatingIPs": "Disabled"}),
        ),
        (
            "ippools",
            "default-ipv4-ippool",
            "IPPool",
            json!({"cidr": "10.244.0.0/16", "vxlanMode": "Always", "ipipMode": "Never",
                   "natOutgoing": true, "blockSize": 24, "nodeSelector": "all()",
                   "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}),
        ),
        (
            "bgpconfigurations",
            "default",
            "BGPConfiguration",
            json!({"logSeverityScreen": "Warning", "nodeToNodeMeshEnabled": false,
                   "asNumber": 65001}),
        ),
        (
            "ipamconfigurations",
            "default",
            "IPAMConfiguration",
            json!({"strictAffinity": false, "autoAllocateBlocks": true}),
        ),
    ];

    // A dry run says what it would create and writes nothing.
    let before = revision(&mut root).await;
    let dry = json_of(&init(&config, &["--dry-run", "--json"]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["written"], false);
    let states: Vec<&str> = dry["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["create"; 6]);
    assert_eq!(revision(&mut root).await, before, "the dry run wrote");
    assert!(keys_under(&mut root, "/calico/").await.is_empty());

    // The real run creates all six in one transaction.
    let report = json_of(&init(&config, &["--json"]));
    let summary = String::from_utf8_lossy(&init(&config, &["--dry-run"]).stdout).into_owned();
    assert!(summary.ends_with("Dry run: would create 0 objects; nothing was written; 6 exist as calseg would write them.\n"), "{summary}");
    assert_eq!(report["written"], true, "{report:#}");
    let written_at = report["revision"].as_i64().unwrap();
    assert_eq!(written_at, before + 1, "one transaction");
    for (index, (plural, name, kind, spec)) in expected.iter().enumerate() {
        let key = key(plural, name);
        let outcome = &report["objects"][index];
        assert_eq!(outcome["key"], key.as_str());
        assert_eq!(outcome["state"], "create");
        let (bytes, mod_revision) = stored(&mut root, &key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(mod_revision, written_at, "{key}");
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value, outcome["value"],
            "{key}: the report shows what was written"
        );
        // libcalico-go's layout: TypeMeta, then ObjectMeta (name, uid, creationTimestamp).
        let text = String::from_utf8(bytes).unwrap();
        let head = format!(
            r#"{{"kind":"{kind}","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}","uid":""#
        );
        assert!(text.starts_with(&head), "{text}");
        assert!(!text.contains(' '), "compact JSON: {text}");
        let uid = value["metadata"]["uid"].as_str().unwrap();
        assert_eq!(uid.len(), 36, "{uid}");
        assert_eq!(&uid[14..15], "4", "a v4 uid: {uid}");
        let created = value["metadata"]["creationTimestamp"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == 20, "{created}");
        assert!(value["metadata"].get("resourceVersion").is_none());
        let mut spec_found = value["spec"].clone();
        if *kind == "ClusterInformation" {
            let guid = spec_found["clusterGUID"].as_str().unwrap().to_owned();
            assert_eq!(guid.len(), 32, "{guid}");
            assert!(guid.bytes().all(|b| b.is_ascii_hexdigit()), "{guid}");
            spec_found.as_object_mut().unwrap().remove("clusterGUID");
        }
        assert_eq!(&spec_found, spec, "{key}");
    }
    // IPAM's own settings key, which every block claim reads (not a v3 resource).
    let ipam = &report["objects"][expected.len()];
    assert_eq!(ipam["key"], "/calico/ipam/v2/config");
    assert_eq!(ipam["state"], "create");
    let (bytes, mod_revision) = stored(&mut root, "/calico/ipam/v2/config").await.unwrap();
    assert_eq!(mod_revision, written_at);
    assert_eq!(bytes, br#"{"auto_allocate_blocks":true}"#);
    let all = keys_under(&mut root, "/calico/").await;
    assert_eq!(all.len(), 6, "nothing else written: {all:?}");

    // A second run finds everything as it would write it and changes nothing.
    let second = init(&config, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let out = String::from_utf8_lossy(&second.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    for (line, (plural, name, _, _)) in lines.iter().zip(&expected) {
        assert_eq!(*line, format!("exists           {}", key(plural, name)));
    }
    assert_eq!(lines[5], "exists           /calico/ipam/v2/config", "{out}");
    assert!(lines[6].starts_with("Nothing to create; 6 exist"), "{out}");
    assert_eq!(
        keys_under(&mut root, "/calico/").await,
        all,
        "mod revisions moved"
    );
    assert_eq!(
        revision(&mut root).await,
        written_at,
        "the second run wrote"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_with_other_values_is_left_byte_for_byte_and_reported() {
    let setup = Setup::new("3.29", "[datastore]\ncalico_release = \"v3.29.3\"\n").await;
    let config = setup.root_config();
    let mut root = setup.root().await;
    // An operator's Felix default (other log level, no reportingInterval, spaces) and their
    // own IPv4 and IPv6 pools.
    let felix_key = key("felixconfigurations", "default");
    let felix = br#"{"kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "default"}, "spec": {"logSeverityScreen": "Debug"}}"#;
    root.put(felix_key.as_str(), felix.to_vec(), None)
        .await
        .unwrap();
    let pool = |cidr: &str| {
        format!(
            r#"{{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{{"name":"p"}},"spec":{{"cidr":"{cidr}"}}}}"#
        )
    };
    root.put(key("ippools", "site-v4"), pool("10.9.0.0/16"), None)
        .await
        .unwrap();
    root.put(key("ippools", "site-v6"), pool("fd00:9::/48"), None)
        .await
        .unwrap();
    let (_, felix_revision) = stored(&mut root, &felix_key).await.unwrap();

    let output = init(&config, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        out.contains(&format!(
            "create           {}\n",
            key("clusterinformations", "default")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("exists, differs  {felix_key}: left as it is\n")),
        "{out}"
    );
    assert!(
        out.contains("    spec.logSeverityScreen: etcd \"Debug\", calseg \"Info\"\n"),
        "{out}"
    );
    assert!(
        out.contains("    spec.reportingInterval: etcd absent, calseg \"0s\"\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "not needed       {}: IPv4 pool(s) site-v4 exist",
            key("ippools", "default-ipv4-ippool")
        )),
        "{out}"
    );
    assert!(
        out.contains("Created 2 objects in one etcd transaction"),
        "{out}"
    );
    assert!(
        out.contains("1 exists with other values, left as it is"),
        "{out}"
    );
    // calico-node would complete that Felix default itself: the operator is told.
    assert!(
        err.contains(&format!(
            "warning: calico-node will update {felix_key} at start (it has no reportingInterval)"
        )),
        "{err}"
    );
    assert!(!err.contains("IPv6 pool"), "an IPv6 pool exists: {err}");

    let (bytes, revision_after) = stored(&mut root, &felix_key).await.unwrap();
    assert_eq!(bytes, felix.to_vec(), "the existing object was rewritten");
    assert_eq!(revision_after, felix_revision);
    assert!(
        stored(&mut root, &key("ippools", "default-ipv4-ippool"))
            .await
            .is_none()
    );
    // Calico 3.29 creates neither BGPConfiguration nor IPAMConfiguration at start.
    assert!(
        stored(&mut root, &key("bgpconfigurations", "default"))
            .await
            .is_none()
    );
    assert!(
        stored(&mut root, &key("ipamconfigurations", "default"))
            .await
            .is_none()
    );
    let info = stored(&mut root, &key("clusterinformations", "default"))
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&info.0).unwrap();
    assert_eq!(info["spec"]["calicoVersion"], "v3.29.3");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_without_write_permission_fails_with_etcds_error_and_writes_nothing() {
    let setup = Setup::new("3.32", "").await;
    let mut root = setup.root().await;
    // One object exists already: only the missing ones are in the refused transaction.
    let info_key = key("clusterinformations", "default");
    let info = r#"{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"clusterGUID":"ab","clusterType":"bgp","datastoreReady":true}}"#;
    root.put(info_key.as_str(), info, None).await.unwrap();
    // A user that may read all of Calico's keys and write none.
    root.role_add("calico-reader").await.unwrap();
    root.role_grant_permission("calico-reader", Permission::read("/calico/").with_prefix())
        .await
        .unwrap();
    root.user_add(
        "calico-reader",
        "",
        Some(UserAddOptions::new().with_no_pwd()),
    )
    .await
    .unwrap();
    root.user_grant_role("calico-reader", "calico-reader")
        .await
        .unwrap();
    let cert = setup.etcd.mint_client("calico-reader").unwrap();
    let files = cert
        .write_files(
            &setup.dir.path().join("reader"),
            "reader",
            &setup.etcd.ca().cert_pem,
        )
        .unwrap();
    let config = setup.config("reader", &files);
    let before = revision(&mut root).await;

    let output = init(&config, &[]);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("etcdserver: permission denied"), "{err}");
    assert!(err.contains("Nothing was written"), "{err}");
    let refused = err
        .split("etcd refused the transaction creating ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    let refused = refused.split(": etcdserver").next().unwrap();
    let missing = [
        key("felixconfigurations", "default"),
        key("ippools", "default-ipv4-ippool"),
        key("bgpconfigurations", "default"),
        "/calico/ipam/v2/config".to_owned(),
    ];
    assert_eq!(refused, missing.join(", "), "{err}");
    assert!(output.stdout.is_empty(), "no report on failure");

    assert_eq!(revision(&mut root).await, before, "something was written");
    assert_eq!(keys_under(&mut root, "/calico/").await.len(), 1);

    // The same run as calseg's root identity goes through.
    let output = init(&setup.root_config(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(keys_under(&mut root, "/calico/").await.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_create_each_object_once() {
    let setup = Setup::new("3.33", DATASTORE).await;
    let config = setup.root_config();
    // Several runs at once: each reads "missing", one transaction wins, the others' guards
    // fail and they read again (or they read after the winner). Either way: one write each.
    let runs: Vec<std::process::Child> = (0..4)
        .map(|_| {
            Command::new(bins::path("calseg-server"))
                .arg("--config")
                .arg(&config)
                .args(["datastore", "init", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn calseg-server")
        })
        .collect();
    let reports: Vec<Value> = runs
        .into_iter()
        .map(|run| json_of(&run.wait_with_output().expect("wait")))
        .collect();
    let writers = reports.iter().filter(|r| r["written"] == true).count();
    assert_eq!(writers, 1, "{reports:#?}");
    for report in &reports {
        let states: Vec<&str> = report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["state"].as_str().unwrap())
            .collect();
        let expected = if report["written"] == true {
            "create"
        } else {
            "exists"
        };
        assert_eq!(states, [expected; 6], "{report:#}");
    }
    let mut root = setup.root().await;
    let response = root
        .get("/calico/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("list");
    assert_eq!(response.kvs().len(), 6);
    for kv in response.kvs() {
        assert_eq!(
            kv.version(),
            1,
            "{} was written more than once",
            kv.key_str().unwrap()
        );
    }
}
