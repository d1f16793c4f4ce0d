//! The file rows, run with the real binaries: policies with `calseg-server apply` against a real
//! etcd (nothing changed: etcd's auth store), server.toml with `calseg-server serve` on an
//! initialized server directory, agent.toml and manifests with `calseg-agent plan --manifest`
//! (nothing changed: every file under the directories involved, byte for byte, with its mode).

use super::{Failure, Input, Row, shows};
use crate::bad_policy::{CASES, GOOD};
use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every file and directory under `dir`: its mode and (files) its bytes.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let content = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                todo.push(entry.expect("entry").path());
            }
            Vec::new()
        } else {
            std::fs::read(&path).unwrap_or_default()
        };
        out.insert(path, (meta.permissions().mode(), content));
    }
    out
}

fn changed(
    before: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
    after: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
) -> Vec<String> {
    let mut paths: Vec<&PathBuf> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.display().to_string())
        .collect()
}

/// Runs `command`, killing it after 20 s (a config that is not refused would start serving).
fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("output")
}

/// Exit status 1 with `expect` in its output, else a failure.
fn judge(row: &Row, output: &Output, extra: &[&str]) -> Option<Failure> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let ok = output.status.code() == Some(1)
        && shows(&text, &row.expect)
        && extra.iter().all(|e| text.contains(e));
    (!ok).then(|| {
        format!(
            "[{:?}] {}: want exit 1 and `{}` {extra:?}\n  saw {:?}: {text}",
            row.area,
            row.name,
            row.expect,
            output.status.code()
        )
    })
}

/// The policy, config and manifest rows.
pub async fn run(rows: &[&Row]) -> Vec<Failure> {
    let etcd = EtcdCluster::start().await.expect("start etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let good = GOOD.replace("ENDPOINT", &etcd.endpoint(0));
    let apply = |policy: &Path| {
        bins::server_direct("apply", policy, etcd.root_files())
            .output()
            .expect("run calseg-server")
    };
    let good_path = dir.path().join("good.toml");
    std::fs::write(&good_path, &good).expect("write");
    let applied = apply(&good_path);
    assert!(applied.status.success(), "{applied:?}");
    let etcd_before = etcd.auth_snapshot().await.expect("snapshot");
    let server_dir = init_server(dir.path());
    let agent = AgentFiles::new(dir.path());

    let mut failures = Vec::new();
    for row in rows {
        let failure = match row.input {
            Input::PolicyCase(_) | Input::PolicyEdit(..) => {
                let (find, replace) = match row.input {
                    Input::PolicyCase(index) => (CASES[index].1, CASES[index].2),
                    Input::PolicyEdit(find, replace) => (find, replace),
                    _ => unreachable!(),
                };
                let endpoint = etcd.endpoint(0);
                let find = find.replace("ENDPOINT", &endpoint);
                assert!(good.contains(&find), "{}: pattern not in GOOD", row.name);
                let bad = good.replacen(&find, &replace.replace("ENDPOINT", &endpoint), 1);
                let path = dir.path().join("bad.toml");
                std::fs::write(&path, bad).expect("write");
                let output = apply(&path);
                let failure = judge(row, &output, &["hint:", "nothing was changed"]);
                let after = etcd.auth_snapshot().await.expect("snapshot");
                failure.or_else(|| {
                    (after != etcd_before).then(|| format!("{}: etcd changed", row.name))
                })
            }
            Input::ServerToml(find, replace) => {
                let config = server_dir.join("etc/server.toml");
                let good_config = std::fs::read_to_string(&config).expect("server.toml");
                assert!(
                    good_config.contains(find),
                    "{}: pattern not found",
                    row.name
                );
                let before = server_state(&server_dir);
                std::fs::write(&config, good_config.replacen(find, replace, 1)).expect("write");
                let mut serve = Command::new(bins::path("calseg-server"));
                serve.arg("--config").arg(&config).arg("serve");
                serve
                    .arg("--policy")
                    .arg(server_dir.join("etc/policy.toml"));
                let output = run_bounded(serve);
                std::fs::write(&config, &good_config).expect("restore");
                let after = server_state(&server_dir);
                judge(row, &output, &[]).or_else(|| {
                    let changed = changed(&before, &after);
                    (!changed.is_empty()).then(|| format!("{}: changed {changed:?}", row.name))
                })
            }
            Input::AgentToml(find, replace) => agent.run(row, Some((find, replace)), None),
            Input::Manifest(find, replace) => agent.run(row, None, Some((find, replace))),
            Input::Sidecar { node, args } => agent.sidecar(row, node, args),
            other => panic!("not a file row: {other:?}"),
        };
        failures.extend(failure);
    }
    failures
}

/// What a refused `serve` must leave alone in a server directory: every file byte for byte,
/// except the store, whose records (nodes, tokens, audit log) are compared instead: redb
/// rewrites its file header whenever it is opened, and `serve` opens the store before it checks
/// server.toml's values (reported with issue 10; the records are what matter).
fn server_state(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    use calseg_server::store::{RedbStore, Store};
    let store_path = dir.join("var/state.redb");
    let mut files = tree(dir);
    files.remove(&store_path);
    let store = RedbStore::open(&store_path).expect("open the store");
    let records = format!(
        "{:?}\n{:?}\n{:?}",
        store.nodes().expect("nodes"),
        store.list_tokens().expect("tokens"),
        store.audit(0, 100_000).expect("audit")
    );
    files.insert(store_path, (0, records.into_bytes()));
    files
}

/// `calseg-server init` in `dir/server` (fleet and etcd CAs, TLS, admin certificate,
/// server.toml), with a policy for `cat-*` and `auto_approve = ["cat-*"]`; nothing started.
fn init_server(dir: &Path) -> PathBuf {
    let root = dir.join("server");
    let port = calseg_tests::ports::free_port().expect("port");
    let metrics = calseg_tests::ports::free_port().expect("port");
    let init = Command::new(bins::path("calseg-server"))
        .arg("init")
        .arg("--config-dir")
        .arg(root.join("etc"))
        .arg("--state-dir")
        .arg(root.join("var"))
        .args([
            "--san",
            "127.0.0.1",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .expect("calseg-server init");
    assert!(init.status.success(), "init: {init:?}");
    let config = root.join("etc/server.toml");
    let text = std::fs::read_to_string(&config)
        .expect("server.toml")
        .replace(
            "reconcile_interval = \"60s\"",
            "reconcile_interval = \"2s\"",
        )
        // Rows enroll many times from one address: no enrollment rate limit here (the limit
        // has its own test, enrollment_attacks.rs).
        .replace(
            "auto_approve = []",
            "auto_approve = [\"cat-*\"]\nenroll_burst = 1000000\nenroll_per_minute = 1000000",
        )
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{metrics}"));
    std::fs::write(&config, text).expect("write server.toml");
    std::fs::write(root.join("etc/policy.toml"), manifest_policy()).expect("policy");
    // Start it once and stop it cleanly, as a real server has been before its configuration is
    // edited: its store exists. (A server that never started creates `state.redb` before it
    // checks server.toml's values: see the report of issue 10.)
    let mut serve = Command::new(bins::path("calseg-server"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--policy")
        .arg(root.join("etc/policy.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "calseg-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(serve.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    assert!(
        serve.wait().expect("wait").success(),
        "calseg-server did not stop cleanly"
    );
    root
}

fn manifest_policy() -> &'static str {
    r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = "calico-node"
env_file = "/etc/calico/calico.env"
[[hosts]]
match = "cat-*"
components = ["calico-node"]
"#
}

/// An agent's files: its state directory and install root, agent.toml, and a valid manifest for
/// `cat-a` (compact JSON) computed by the server's own code.
struct AgentFiles {
    dir: PathBuf,
    config: String,
    manifest: String,
}

impl AgentFiles {
    fn new(base: &Path) -> Self {
        let dir = base.join("agent");
        std::fs::create_dir_all(dir.join("state")).expect("state dir");
        std::fs::create_dir_all(dir.join("root")).expect("root dir");
        let config = format!(
            "node = \"cat-a\"\nstate_dir = \"{}\"\nroot = \"{}\"\ninterval = \"5m\"\n",
            dir.join("state").display(),
            dir.join("root").display()
        );
        let policy =
            calseg_server::policy::parse(manifest_policy(), "policy.toml").expect("policy");
        let ca = calseg_tests::pki::TestCa::new("etcd ca").expect("ca");
        let manifest = calseg_server::manifest::manifest_for(&policy, "cat-a", 0, &ca.cert_pem)
            .expect("manifest");
        Self {
            dir,
            config,
            manifest: serde_json::to_string(&manifest).expect("json"),
        }
    }

    /// `calseg-agent sidecar` as node `node` with `args` (`DIR` is the agent's
    /// directory), to an unused server: refused before it connects; nothing changes.
    fn sidecar(&self, row: &Row, node: Option<&str>, args: &[&str]) -> Option<Failure> {
        let out = self.dir.join("calico-secrets");
        std::fs::create_dir_all(&out).expect("output dir");
        std::fs::write(self.dir.join("agent.toml"), &self.config).expect("agent.toml");
        let before = tree(&self.dir);
        let mut cmd = Command::new(bins::path("calseg-agent"));
        cmd.arg("--config")
            .arg(self.dir.join("agent.toml"))
            .args(["sidecar", "--no-wait"])
            .args(["--server", "https://127.0.0.1:1", "--ca-hash"])
            .arg(format!("sha256:{}", "0".repeat(64)))
            .args(
                args.iter()
                    .map(|a| a.replace("DIR", &self.dir.display().to_string())),
            )
            .env_remove("CALSEG_NODE_NAME");
        if !args.contains(&"--output-dir") {
            cmd.arg("--output-dir").arg(&out);
        }
        if let Some(node) = node {
            cmd.env("CALSEG_NODE_NAME", node);
        }
        let output = cmd.output().expect("run calseg-agent sidecar");
        let changed = changed(&before, &tree(&self.dir));
        judge(row, &output, &[])
            .or_else(|| (!changed.is_empty()).then(|| format!("{}: changed {changed:?}", row.name)))
    }

    /// `calseg-agent --config agent.toml plan --manifest manifest.json` with one of the two
    /// edited; the agent's directories must be unchanged.
    fn run(
        &self,
        row: &Row,
        config_edit: Option<(&str, &str)>,
        manifest_edit: Option<(&str, &str)>,
    ) -> Option<Failure> {
        let edit = |text: &str, edit: Option<(&str, &str)>| match edit {
            Some((find, replace)) => {
                assert!(text.contains(find), "{}: `{find}` not in {text}", row.name);
                text.replacen(find, replace, 1)
            }
            None => text.to_owned(),
        };
        let files = tempfile::tempdir().expect("tempdir");
        let config = files.path().join("agent.toml");
        let manifest = files.path().join("manifest.json");
        std::fs::write(&config, edit(&self.config, config_edit)).expect("write");
        std::fs::write(&manifest, edit(&self.manifest, manifest_edit)).expect("write");
        let before = tree(&self.dir);
        let output = Command::new(bins::path("calseg-agent"))
            .arg("--config")
            .arg(&config)
            .arg("plan")
            .arg("--manifest")
            .arg(&manifest)
            .output()
            .expect("run calseg-agent");
        let changed = changed(&before, &tree(&self.dir));
        judge(row, &output, &[])
            .or_else(|| (!changed.is_empty()).then(|| format!("{}: changed {changed:?}", row.name)))
    }
}
