//! Issue 18, point 5: both binaries end quietly when the reader of their standard output has
//! gone (`calseg-server token list | head -1`): no "failed printing to stdout" panic, exit
//! status 141 (128 + SIGPIPE, as a C tool killed by SIGPIPE). The pipe's read end is closed
//! before the command starts, so every write fails: no race with the reader.

use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::process::{Command, Output, Stdio};

/// Runs `command` with stdout a pipe nobody reads from.
fn into_closed_pipe(mut command: Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    command
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run the command")
}

fn assert_quiet(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("failed printing"),
        "{what} panicked on a closed stdout:\n{stderr}"
    );
    assert_eq!(
        output.status.code(),
        Some(141),
        "{what}: exit status on a closed stdout\n{stderr}"
    );
}

#[tokio::test]
async fn issue_18_a_long_listing_into_a_closed_pipe_exits_quietly() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let policy = format!(
        "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"{}\"]\n[components.calico-node]\n\
         grants = \"calico-node-per-node\"\n[[hosts]]\nmatch = \"node*\"\ncomponents = [\"calico-node\"]\n",
        etcd.endpoint(0)
    );
    let server = ServerProcess::start(&etcd, &policy, "")
        .await
        .expect("server");
    for i in 0..40 {
        server
            .cli_ok(&["token", "create", "--node", &format!("node{i}")])
            .expect("token create");
    }
    let listed = server.cli_ok(&["token", "list"]).expect("token list");
    assert!(listed.lines().count() >= 40, "a long listing:\n{listed}");

    let mut list = Command::new(bins::path("calseg-server"));
    list.arg("--config")
        .arg(server.config_path())
        .args(["token", "list"]);
    assert_quiet("calseg-server token list", &into_closed_pipe(list));

    // The agent's status (no server needed: it reads its own state).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nservers = [\"{}\"]\n",
            dir.path().display(),
            server.url()
        ),
    )
    .unwrap();
    let mut status = Command::new(bins::path("calseg-agent"));
    status.arg("--config").arg(&config).arg("status");
    assert_quiet("calseg-agent status", &into_closed_pipe(status));

    // As people type it: `| head -1` sees the first line, and no panic text appears.
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} --config {} token list | head -1",
            bins::path("calseg-server").display(),
            server.config_path().display()
        ))
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stdout).lines().count(), 1);
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
