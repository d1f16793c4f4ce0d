//! The harness's sandboxed hosts: a real systemd that restarts units over D-Bus, its own
//! hostname and network, and never a change to the real root filesystem.

use crate::harness_etcd::process_exists;
use calseg_tests::sandbox::{SandboxHost, SandboxOptions};
use std::time::Duration;

const PROBE_UNIT: &str = "[Unit]
Description=calseg harness probe
[Service]
ExecStart=/bin/sleep infinity
";

#[tokio::test]
async fn writes_inside_never_reach_the_real_root() {
    let host = SandboxHost::boot("sbx-write").await.expect("boot");
    let probe = format!("/etc/calseg-sandbox-probe-{}", std::process::id());
    host.exec_ok(&format!("echo inside > {probe}"))
        .expect("write inside");
    assert_eq!(
        host.exec_ok(&format!("cat {probe}"))
            .expect("read inside")
            .trim(),
        "inside"
    );
    assert!(
        host.path(&probe).exists(),
        "not visible through /proc/PID/root"
    );
    assert!(
        !std::path::Path::new(&probe).exists(),
        "{probe} leaked onto the real root filesystem"
    );
    // Deleting a real file inside leaves the real one in place.
    host.exec_ok("rm /etc/hostname").expect("rm inside");
    assert!(std::path::Path::new("/etc/hostname").exists());
}

#[tokio::test]
async fn restart_over_dbus_changes_the_main_pid() {
    let host = SandboxHost::boot("sbx-restart").await.expect("boot");
    host.install_unit("calseg-probe.service", PROBE_UNIT)
        .await
        .expect("install unit");
    let before = host
        .start_unit("calseg-probe.service")
        .await
        .expect("start");
    assert_eq!(before.active_state, "active");
    assert!(before.main_pid > 0);

    let systemd = host.systemd().await.expect("bus");
    systemd
        .restart("calseg-probe.service")
        .await
        .expect("restart");
    let mut after = systemd
        .wait_active("calseg-probe.service", Duration::from_secs(20))
        .await
        .expect("active again");
    for _ in 0..50 {
        if after.main_pid != before.main_pid && after.main_pid != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = host
            .unit_status("calseg-probe.service")
            .await
            .expect("status");
    }
    assert_ne!(
        after.main_pid, before.main_pid,
        "MainPID unchanged by RestartUnit"
    );
    assert_eq!(
        after.n_restarts, 0,
        "an explicit restart is not an automatic one"
    );

    let missing = host
        .unit_status("calseg-absent.service")
        .await
        .expect("status");
    assert!(!missing.is_installed());
}

#[tokio::test]
async fn a_sandbox_has_its_own_hostname_and_network_linked_by_veth() {
    let host = SandboxHost::boot_with(SandboxOptions {
        hostname: "sbx-net".into(),
        own_network: true,
    })
    .await
    .expect("boot");
    assert_eq!(
        host.exec_ok("hostname").expect("hostname").trim(),
        "sbx-net"
    );
    let real = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("read");
    assert_ne!(real.trim(), "sbx-net", "the real hostname changed");

    let link = host.link().expect("veth link").clone();
    let listener = tokio::net::TcpListener::bind((link.host_addr.as_str(), 0))
        .await
        .expect("listen on the host end");
    let port = listener.local_addr().expect("addr").port();
    let accept = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut stream, peer) = listener.accept().await.expect("accept");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        (peer.ip().to_string(), text)
    });
    host.exec_ok(&format!(
        "echo hello-from-sandbox | timeout 10 bash -c 'cat > /dev/tcp/{}/{port}'",
        link.host_addr
    ))
    .expect("connect from inside");
    let (peer, text) = tokio::time::timeout(Duration::from_secs(10), accept)
        .await
        .expect("accepted in time")
        .expect("task");
    assert_eq!(peer, link.sandbox_addr);
    assert_eq!(text.trim(), "hello-from-sandbox");
}

#[tokio::test]
async fn teardown_ends_pid1_and_removes_its_cgroups() {
    let host = SandboxHost::boot("sbx-teardown").await.expect("boot");
    let pid1 = host.pid1();
    let cgroup_marker = std::fs::read_to_string(format!("/proc/{pid1}/cgroup")).expect("cgroup");
    let name = cgroup_marker
        .lines()
        .filter_map(|line| line.rsplit(':').next())
        .find_map(|path| {
            path.split('/')
                .find(|part| part.starts_with("calseg-sbx-"))
                .map(str::to_owned)
        })
        .expect("the sandbox runs in its own calseg-sbx-* cgroup");
    drop(host);
    assert!(
        !process_exists(pid1),
        "sandbox PID 1 ({pid1}) outlived its handle"
    );
    for root in [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let dir = std::path::Path::new(root).join(&name);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
