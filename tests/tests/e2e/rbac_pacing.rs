//! Issue 20, points 1 and 2, end to end: the etcd objects of an identity without a marker role
//! (a fleet made with one converges, no user losing a permission meanwhile), and a paced apply
//! that an etcd stopped under it (SIGSTOP, then SIGCONT) makes wait, not fail, ending with
//! exactly the policy's grants. The real `calseg-server apply` against a real etcd.

use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

const MARKER: &str = "calseg-managed";

/// calico-node with two per-node grants and calicoctl-ro, on `nodes` nodes `n-0`….
fn policy_text(endpoint: &str, nodes: usize) -> String {
    let names: Vec<String> = (0..nodes).map(|i| format!("\"n-{i}\"")).collect();
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [
    {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }},
    {{ prefix = "/calico/felix/v2/no-region/host/{{node}}/", access = "readwrite" }},
]
[components.calicoctl-ro]
grants = "calicoctl-read-only"
[[hosts]]
names = [{}]
components = ["calico-node", "calicoctl-ro"]
"#,
        names.join(", ")
    )
}

struct Setup {
    etcd: EtcdCluster,
    policy: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new(nodes: usize) -> Self {
        let etcd = EtcdCluster::start().await.expect("start etcd");
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, policy_text(&etcd.endpoint(0), nodes)).expect("policy");
        Self {
            etcd,
            policy,
            _dir: dir,
        }
    }

    fn server(&self, command: &str, extra: &[&str]) -> Output {
        self.command(command, extra)
            .output()
            .expect("run calseg-server")
    }

    fn command(&self, command: &str, extra: &[&str]) -> std::process::Command {
        let mut cli = bins::server_direct(command, &self.policy, self.etcd.root_files());
        cli.args(extra);
        cli
    }

    async fn user_count(&self) -> usize {
        let mut root = self.etcd.root_client().await.expect("root");
        root.user_list().await.expect("users").users().len()
    }
}

fn text(output: &Output) -> String {
    calseg_tests::agent_host::describe(output)
}

/// Puts to `key` as the etcd user `cn` (a certificate minted for it).
async fn put_as(etcd: &EtcdCluster, cn: &str, key: &str) -> Result<(), String> {
    let identity = etcd.mint_client(cn).expect("mint");
    let mut client = etcd.client_as(&identity).await.map_err(|e| e.to_string())?;
    client
        .put(key, "v", None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Gets `key` as the etcd user `cn`.
async fn get_as(etcd: &EtcdCluster, cn: &str, key: &str) -> Result<(), String> {
    let identity = etcd.mint_client(cn).expect("mint");
    let mut client = etcd.client_as(&identity).await.map_err(|e| e.to_string())?;
    client
        .get(key, None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `op` until it succeeds, retried a few times on answers that are not a refusal (etcd answers
/// "revision of auth store is old" to a request that raced an auth change, as every client
/// retries); a permission denied is returned at once.
async fn allowed<F, Fut>(mut op: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut last = String::new();
    for _ in 0..5 {
        match op().await {
            Ok(()) => return Ok(()),
            Err(error) if error.contains("permission denied") => return Err(error),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}

/// Waits for `child` for at most `limit`; its output.
fn wait_at_most(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("calseg-server apply did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Sends SIGCONT to a stopped etcd when dropped, so a failing test never leaves it stopped.
struct Stopped(Pid);

impl Stopped {
    fn stop(pid: u32) -> Self {
        let pid = Pid::from_raw(i32::try_from(pid).expect("pid"));
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP etcd");
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// A fleet made by an earlier calseg, whose users also held the marker role `calseg-managed`:
/// one apply deletes that role (one change for the whole fleet, not one per user), every
/// identity keeps working before, during and after, and the result is exactly what a fresh
/// apply makes. The identities stay calseg's throughout (signing depends on it).
#[tokio::test]
async fn a_fleet_with_the_marker_role_converges_without_losing_a_grant() {
    let setup = Setup::new(30).await;
    let etcd = &setup.etcd;
    let fresh = setup.server("apply", &[]);
    assert!(fresh.status.success(), "{}", text(&fresh));
    let new_layout = etcd.auth_snapshot().await.expect("snapshot");
    assert!(!new_layout.contains(MARKER), "{new_layout}");

    // The earlier layout: the marker role, bound to every identity.
    let mut root = etcd.root_client().await.expect("root");
    root.role_add(MARKER).await.expect("marker");
    let users = root.user_list().await.expect("users").users().to_vec();
    let identities: Vec<String> = users.into_iter().filter(|u| u != "root").collect();
    assert_eq!(identities.len(), 60);
    for user in &identities {
        root.user_grant_role(user.as_str(), MARKER)
            .await
            .expect("bind marker");
    }
    let old_layout = etcd.auth_snapshot().await.expect("snapshot");
    assert_ne!(old_layout, new_layout);

    // Exactly one change, and it takes nothing any identity needs.
    let plan = setup.server("plan", &[]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan_text.contains("Plan: 1 roles to delete."),
        "{plan_text}"
    );
    assert!(
        plan_text.contains(&format!("- role {MARKER}")),
        "{plan_text}"
    );

    // Identities work throughout the migrating apply.
    let felix = "/calico/felix/v1/host/n-3/status";
    let config = "/calico/resources/v3/projectcalico.org/clusterinformations/default";
    let child = setup
        .command("apply", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn apply");
    let mut checks = 0;
    let mut child = Some(child);
    while let Some(running) = child.as_mut() {
        allowed(|| put_as(etcd, "calico-node.n-3", felix))
            .await
            .expect("calico-node.n-3 lost its own felix keys during the migration");
        allowed(|| get_as(etcd, "calicoctl-ro.n-7", config))
            .await
            .expect("calicoctl-ro.n-7 lost its read access during the migration");
        checks += 1;
        if running.try_wait().expect("try_wait").is_some() {
            let output = child
                .take()
                .expect("child")
                .wait_with_output()
                .expect("output");
            assert!(output.status.success(), "{}", text(&output));
        }
    }
    assert!(checks >= 1);
    allowed(|| put_as(etcd, "calico-node.n-3", felix))
        .await
        .expect("calico-node.n-3 after the migration");
    allowed(|| get_as(etcd, "calicoctl-ro.n-7", config))
        .await
        .expect("calicoctl-ro.n-7 after the migration");
    // Still narrowed: n-3 may not write n-4's keys.
    let denied = put_as(etcd, "calico-node.n-3", "/calico/felix/v1/host/n-4/status").await;
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.contains("permission denied")),
        "{denied:?}"
    );

    // The same objects as a fresh apply; nothing left to do.
    assert_eq!(etcd.auth_snapshot().await.expect("snapshot"), new_layout);
    let again = setup.server("plan", &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

/// A paced apply of 300 identities; etcd is stopped (SIGSTOP) for longer than the client's
/// request timeout in the middle of it, then continued, then stopped briefly again. The apply
/// waits, backs off and finishes (exit 0); afterwards etcd holds exactly the policy's grants
/// (`plan` finds nothing to do) and each identity is still narrowed to its own keys.
#[tokio::test]
async fn an_etcd_stopped_mid_apply_makes_the_apply_wait_and_finish_with_exactly_the_policy() {
    let setup = Setup::new(150).await;
    let etcd = &setup.etcd;
    let pid = etcd.member_pid(0).expect("etcd's pid");
    let mut child = setup
        .command("apply", &["--auth-change-duty", "0.5"])
        // The plan it prints is larger than a pipe holds; only its exit status and errors count.
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn apply");

    // Once users are being made (roles and permissions come first), stop etcd under it.
    let mut root = etcd.root_client().await.expect("root");
    let mut users = 0;
    for _ in 0..3000 {
        users = root.user_list().await.expect("users").users().len();
        if users > 40 {
            break;
        }
        if child.try_wait().expect("try_wait").is_some() {
            let output = child.wait_with_output().expect("output");
            panic!("the apply ended before etcd was stopped: {}", text(&output));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(users > 40, "the apply made only {users} users");
    {
        let _stopped = Stopped::stop(pid);
        // Longer than the apply's etcd request timeout (15 s): requests in flight time out.
        tokio::time::sleep(Duration::from_secs(18)).await;
    }
    let mut after = users;
    for _ in 0..1500 {
        after = setup.user_count().await;
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if after > users + 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let _stopped = Stopped::stop(pid);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    let output = tokio::task::spawn_blocking(move || wait_at_most(child, Duration::from_secs(300)))
        .await
        .expect("join");
    assert!(
        output.status.success(),
        "the apply failed although etcd came back (users before the stop: {users}, after: {after}): {}",
        text(&output)
    );
    let plan = setup.server("plan", &[]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "etcd does not hold exactly the policy's grants: {}",
        text(&plan)
    );
    assert_eq!(setup.user_count().await, 1 + 300);
    put_as(
        etcd,
        "calico-node.n-149",
        "/calico/felix/v1/host/n-149/status",
    )
    .await
    .expect("own keys");
    let denied = put_as(
        etcd,
        "calico-node.n-149",
        "/calico/felix/v1/host/n-0/status",
    )
    .await;
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.contains("permission denied")),
        "{denied:?}"
    );
}
