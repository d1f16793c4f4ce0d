//! Issue 21, point 2: the side car makes calico-node use a new identity by signalling it, only
//! under a restart lease from the server's budget and only in its own PID namespace. A copy of
//! `sleep` under a unique command name stands in for calico-node, kept running by a shell loop
//! as the kubelet (or runit) would; another copy runs in a new PID namespace.

use crate::sidecar::{Pod, policy_with, serial, text};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::process::Command;

/// The children of `parent` (by /proc/PID/stat's ppid).
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the comm may hold spaces, so split after its `)`.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// Waits up to `secs` for `check`.
fn wait_for(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Processes this test started, killed by their process group at drop.
struct Started(Vec<std::process::Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

fn spawn_group(cmd: &mut Command) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn")
}

fn sigterm_and_wait(child: &mut std::process::Child) -> Option<i32> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    child.wait().expect("wait").code()
}

#[tokio::test]
async fn issue_21_sidecar_signals_calico_node_only_under_a_restart_lease_and_only_in_its_namespace()
{
    let etcd = EtcdCluster::start().await.expect("etcd");
    let rollout = "[rollout]\nmax_unavailable = 1\nlease_ttl = \"60s\"\n";
    let server = ServerProcess::start(&etcd, &policy_with(&etcd.endpoint(0), rollout), "")
        .await
        .expect("server");
    let pod = Pod::new();
    let token = server.token_for("sc-1", "1h").expect("token");
    std::fs::write(&pod.token, token).expect("token Secret");
    let init = pod.sidecar(
        &server,
        Some("sc-1"),
        &["--init", "--token-file", pod.token.to_str().unwrap()],
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));

    // The stand-in calico-node container: a copy of sleep under a unique command name, kept
    // running by a loop as the kubelet would; and one of the same name in another PID
    // namespace, which the side car must never signal.
    let name = format!("csc-{}", std::process::id());
    let standin = pod.out.parent().unwrap().join(&name);
    std::fs::copy("/bin/sleep", &standin).expect("copy sleep");
    let mut started = Started(Vec::new());
    let kubelet = spawn_group(
        Command::new("sh")
            .args(["-c", "while :; do \"$0\" 600; done"])
            .arg(&standin),
    );
    let outside = spawn_group(
        Command::new("unshare")
            .args(["--pid", "--fork"])
            .arg(&standin)
            .arg("600"),
    );
    let (kubelet_pid, outside_parent) = (kubelet.id(), outside.id());
    started.0.push(kubelet);
    started.0.push(outside);
    let mut calico = Vec::new();
    assert!(wait_for(10, || {
        calico = children(kubelet_pid);
        calico.len() == 1
    }));
    let mut outsider = Vec::new();
    assert!(wait_for(10, || {
        outsider = children(outside_parent);
        outsider.len() == 1
    }));
    let config = pod.out.parent().unwrap().join("agent.toml");
    std::fs::write(
        &config,
        "interval = \"10s\"\njitter = \"0s\"\nlease_wait = \"2s\"\nrestart_timeout = \"4s\"\nlong_poll = false\n",
    )
    .expect("agent.toml");

    // The budget is full (another node holds the only lease): no signal, the new files are
    // rolled back, and the side car keeps running.
    let mut hog =
        calseg_tests::api_client::TestNode::new("sc-2", &server.url(), &server.fleet_ca_pem())
            .expect("node");
    let hog_token = server.token_for("sc-2", "1h").expect("token");
    hog.enroll(Some(&hog_token)).await.expect("enroll sc-2");
    let hog_client = hog.client().expect("client");
    let request = calseg_api::lease::LeaseRequest {
        units: vec!["calico-node.service".into()],
        revision: "r1".into(),
    };
    let grant: calseg_api::lease::LeaseGrant = hog_client
        .post(format!(
            "{}{}",
            server.url(),
            calseg_api::paths::RESTART_LEASE
        ))
        .json(&request)
        .send()
        .await
        .expect("lease")
        .json()
        .await
        .expect("granted");
    let before = serial(&pod);
    let last_cycle = pod.state.join("last-cycle.json");
    let modified = || {
        std::fs::metadata(&last_cycle)
            .and_then(|m| m.modified())
            .ok()
    };
    let was = modified();
    let mut sidecar = spawn_group(&mut pod.command(
        &server,
        &config,
        Some("sc-1"),
        &["--renew", "--signal", &name],
    ));
    assert!(wait_for(30, || modified() != was), "no pass recorded");
    let record = std::fs::read_to_string(&last_cycle).unwrap();
    assert!(record.contains("restart lease"), "{record}");
    assert_eq!(children(kubelet_pid), calico, "signalled without a lease");
    assert_eq!(serial(&pod), before, "the new files were not rolled back");
    assert_eq!(sigterm_and_wait(&mut sidecar), Some(0));

    // The budget frees: the renewal is installed, calico-node (only it) gets SIGTERM and the
    // kubelet starts it again; the one in the other namespace lives on.
    let released = hog_client
        .delete(format!(
            "{}{}",
            server.url(),
            calseg_api::paths::lease(&grant.lease_id)
        ))
        .send()
        .await
        .expect("release");
    assert!(released.status().is_success(), "{released:?}");
    let mut sidecar = spawn_group(&mut pod.command(
        &server,
        &config,
        Some("sc-1"),
        &["--renew", "--signal", &name],
    ));
    let mut now = Vec::new();
    assert!(
        wait_for(30, || {
            now = children(kubelet_pid);
            now.len() == 1 && now != calico
        }),
        "calico-node was not restarted"
    );
    assert_ne!(serial(&pod), before, "renewed");
    assert!(wait_for(15, || modified().is_some()
        && std::fs::read_to_string(&last_cycle)
            .unwrap_or_default()
            .contains("\"changed\"")));
    assert_eq!(
        children(outside_parent),
        outsider,
        "a process of another PID namespace was signalled"
    );
    assert_eq!(sigterm_and_wait(&mut sidecar), Some(0));
    drop(started);
}
