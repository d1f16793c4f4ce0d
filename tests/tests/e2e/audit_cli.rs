//! Issue 18, point 7: `calseg-server audit` against the real server. `--since` takes a time (a
//! duration ago or RFC 3339), `--after-seq` the sequence number it used to take; `--follow`
//! prints new entries as they come, ends with exit 0 on Ctrl-C (SIGINT), and ends quietly when
//! the reader of its output goes away (no "Broken pipe" panic).

use calseg_tests::agent_host::{describe, standin_policy};
use calseg_tests::bins;
use calseg_tests::server::ServerProcess;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn follow(server: &ServerProcess, args: &[&str]) -> Child {
    Command::new(bins::path("calseg-server"))
        .arg("--config")
        .arg(server.config_path())
        .args(["audit", "--follow"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn audit --follow")
}

/// Waits for `child` to exit, at most `within`; kills it and fails otherwise.
fn exited(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_18_audit_since_a_time_after_seq_and_follow() {
    let etcd = calseg_tests::etcd::EtcdCluster::start()
        .await
        .expect("etcd");
    let server = ServerProcess::start(
        &etcd,
        &standin_policy(&etcd.endpoint(0), "names = [\"audit-1\", \"audit-2\"]"),
        "",
    )
    .await
    .expect("server");
    server.token_for("audit-1", "10m").expect("token");
    // The reconciler's own entries (rbac-apply) may come at any time; let the first settle.
    server.wait_rbac_applied().await.expect("rbac applied");

    let all: Vec<serde_json::Value> =
        serde_json::from_str(&server.cli_ok(&["audit", "--json"]).expect("audit")).expect("JSON");
    let last = all.last().expect("entries")["seq"].as_u64().expect("seq");
    let recent = server.cli_ok(&["audit", "--since", "1h"]).expect("audit");
    assert!(
        recent.contains("token-create") && recent.contains("admin:root"),
        "{recent}"
    );
    assert!(
        recent.contains('Z') && recent.starts_with("SEQ"),
        "{recent}"
    );
    let future = server
        .cli_ok(&["audit", "--since", "2099-01-01T00:00:00Z"])
        .expect("audit");
    assert_eq!(future.lines().count(), 1, "only the header: {future}");
    let after = server
        .cli_ok(&["audit", "--after-seq", &last.to_string(), "-o", "json"])
        .expect("audit");
    let after: Vec<serde_json::Value> = serde_json::from_str(&after).expect("JSON");
    assert!(
        after.iter().all(|e| e["seq"].as_u64() > Some(last)),
        "only entries after {last}: {after:?}"
    );
    let bad = server.cli(&["audit", "--since", "12"]).expect("audit");
    let text = describe(&bad);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains("--since \"12\"") && text.contains("--after-seq"),
        "{text}"
    );

    // --follow -o json: the entries so far, then each new one as one JSON line.
    let mut child = follow(&server, &["-o", "json", "--after-seq", &last.to_string()]);
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    server.token_for("audit-2", "10m").expect("token");
    // Each line one JSON object after `last`, until the new token's entry (the reconciler may
    // add its own entries in between).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the new token's entry while following");
        let entry: serde_json::Value = serde_json::from_str(&line).expect("one JSON object a line");
        assert!(entry["seq"].as_u64().expect("seq") > last, "{line}");
        if entry["action"] == "token-create" {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let status = exited(
        &mut child,
        Duration::from_secs(10),
        "audit --follow after Ctrl-C",
    );
    assert_eq!(status.code(), Some(0), "Ctrl-C ends --follow cleanly");

    // The reader goes away (as `| head` does): the next write ends it quietly.
    let mut child = follow(&server, &[]);
    drop(child.stdout.take());
    server.token_for("audit-1", "10m").expect("token");
    let status = exited(
        &mut child,
        Duration::from_secs(15),
        "audit --follow, pipe closed",
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}
