//! Issue 18, points 3 and 5: calseg-server as systemd runs it. The repository's own
//! calseg-server.service (only the binary's path changed to the dev build) runs under a real
//! systemd in a sandboxed host with its own network namespace, as user calseg, without etcd
//! credentials (the server signs and serves; RBAC is not the point here).
//! - Point 3: `systemctl reload` goes through `ExecReload=calseg-server reload`, which waits for
//!   the server's verdict: a refused policy fails the reload, with the reason in the journal and
//!   `systemctl status`, and the old policy stays in force; a fixed policy reloads.
//! - Point 5: under systemd the server logs to the journal with priorities (`journalctl -p err`
//!   finds its errors), one event per line, no timestamps of its own, no Debug formatting.

use calseg_tests::bins;
use calseg_tests::sandbox::{SandboxHost, SandboxOptions};
use std::time::Duration;

const UNIT: &str = "calseg-server.service";

/// A policy without etcd to manage; `extra` is appended (a comment makes a new revision).
fn policy(extra: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:1"]
[components.calico-node]
grants = "calico-node-per-node"
restart = ["calico-node.service"]
[[hosts]]
match = "node*"
components = ["calico-node"]
{extra}
"#
    )
}

/// Boots a host with calseg-server initialized and its unit running (active after READY=1).
async fn host_with_server_unit(name: &str) -> (SandboxHost, u32) {
    let host = SandboxHost::boot_with(SandboxOptions {
        hostname: name.to_owned(),
        own_network: true,
    })
    .await
    .expect("boot");
    let server = bins::path("calseg-server").display().to_string();
    host.exec_ok(
        "useradd --system --user-group --home-dir /var/lib/calseg --shell /usr/sbin/nologin calseg",
    )
    .expect("the calseg user");
    host.exec_ok(&format!(
        "{server} init --force --san 127.0.0.1 --listen 127.0.0.1:8443 >/dev/null 2>&1"
    ))
    .expect("calseg-server init");
    host.write_file("/etc/calseg/policy.toml", &policy(""), 0o640)
        .unwrap();
    host.exec_ok(
        "chown -R calseg:calseg /var/lib/calseg && chgrp -R calseg /etc/calseg && chmod 750 /etc/calseg",
    )
    .expect("give the server its files");
    let unit = include_str!("../../../systemd/calseg-server.service")
        .replace("/usr/bin/calseg-server", &server);
    assert!(
        unit.contains(&format!("ExecReload={server} reload --pid $MAINPID")),
        "the unit reloads through `calseg-server reload`:\n{unit}"
    );
    host.install_unit(UNIT, &unit).await.expect("install unit");
    let started = match host.start_unit(UNIT).await {
        Ok(status) => status,
        Err(error) => panic!("{UNIT} did not start: {error:#}\n{}", journal(&host, "")),
    };
    (host, started.main_pid)
}

/// The server unit's journal, message text only, at `priority` or more urgent (`""`: all).
fn journal(host: &SandboxHost, priority: &str) -> String {
    let filter = if priority.is_empty() {
        String::new()
    } else {
        format!("-p {priority}")
    };
    host.exec(&format!(
        "journalctl --sync 2>/dev/null; journalctl -u {UNIT} {filter} --no-pager -o cat"
    ))
    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    .unwrap_or_default()
}

/// The policy revision the running server has in force, from the admin API.
fn revision_in_force(host: &SandboxHost) -> u64 {
    let server = bins::path("calseg-server").display().to_string();
    let json = host
        .exec_ok(&format!("{server} rollout status --json"))
        .expect("rollout status");
    let status: serde_json::Value = serde_json::from_str(&json).expect("status JSON");
    status["policy_revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("no policy_revision in {json}"))
}

/// Waits until the journal (at `priority`) holds a line containing every one of `words`.
async fn journal_line_with(host: &SandboxHost, priority: &str, words: &[&str]) -> Option<String> {
    for _ in 0..50 {
        let text = journal(host, priority);
        if let Some(line) = text.lines().find(|l| words.iter().all(|w| l.contains(w))) {
            return Some(line.to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn issue_18_a_refused_policy_fails_systemctl_reload_and_the_old_policy_stays_in_force() {
    let (host, pid) = host_with_server_unit("reload-unit").await;
    assert_eq!(revision_in_force(&host), 1);

    // A policy with an error: the reload fails, and says why.
    host.write_file("/etc/calseg/policy.toml", &policy("bogus_key = 1"), 0o640)
        .unwrap();
    let refused = host.exec("systemctl reload calseg-server").unwrap();
    assert!(
        !refused.status.success(),
        "systemctl reload succeeded with a policy the server refuses:\n{}",
        journal(&host, "")
    );
    // `calseg-server reload` says so (its stderr is in the unit's journal), with the reason,
    // in one entry at priority err.
    let said = journal_line_with(
        &host,
        "err",
        &["error: the policy was refused", "unknown key `bogus_key`"],
    )
    .await;
    assert!(
        said.is_some(),
        "the reload's refusal and reason are not in the unit's journal:\n{}",
        journal(&host, "")
    );
    let shown = host
        .exec_ok("systemctl show -p ActiveState -p MainPID -p StatusText calseg-server")
        .unwrap();
    assert!(shown.contains("ActiveState=active"), "{shown}");
    assert!(
        shown.contains(&format!("MainPID={pid}")),
        "restarted: {shown}"
    );
    assert!(
        shown.contains("last policy reload refused, old policy kept")
            && shown.contains("bogus_key"),
        "systemctl status does not say the reload was refused: {shown}"
    );
    assert_eq!(
        revision_in_force(&host),
        1,
        "the refused policy was put in force"
    );

    // Fixed (and changed: a new revision): the reload succeeds and the new policy is in force.
    host.write_file("/etc/calseg/policy.toml", &policy("# fixed"), 0o640)
        .unwrap();
    host.exec_ok("systemctl reload calseg-server")
        .unwrap_or_else(|e| panic!("reload of a good policy: {e:#}\n{}", journal(&host, "")));
    assert_eq!(
        revision_in_force(&host),
        2,
        "the fixed policy is not in force"
    );
    let shown = host
        .exec_ok("systemctl show -p ActiveState -p MainPID -p StatusText calseg-server")
        .unwrap();
    assert!(
        shown.contains(&format!("MainPID={pid}")),
        "restarted: {shown}"
    );
    assert!(
        !shown.contains("refused"),
        "stale refusal in the status: {shown}"
    );
    let recorded = host
        .exec_ok("cat /var/lib/calseg/reload-status.json")
        .unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(recorded["generation"], 2, "{recorded}");
    assert_eq!(recorded["outcome"], "ok", "{recorded}");
    assert_eq!(recorded["revision"], 2, "{recorded}");
}

#[tokio::test]
async fn issue_18_server_errors_reach_journalctl_p_err_as_one_line_each() {
    let (host, _) = host_with_server_unit("journal-unit").await;
    host.write_file(
        "/etc/calseg/policy.toml",
        &policy("[[hosts]]\nmatch = \"x*\"\ncomponents = [\"nope\"]"),
        0o640,
    )
    .unwrap();
    let _ = host.exec("systemctl reload calseg-server").unwrap();
    // The error is at priority err, and the whole multi-line policy error is one entry.
    let line = journal_line_with(
        &host,
        "err",
        &[
            "policy reload refused",
            "unknown component \"nope\"",
            "hint: declared components",
        ],
    )
    .await;
    assert!(
        line.is_some(),
        "`journalctl -p err` does not find the server's error:\n{}",
        journal(&host, "")
    );
    // Info lines are not errors.
    let errors = journal(&host, "err");
    assert!(
        !errors.contains("policy loaded"),
        "an info line is at priority err:\n{errors}"
    );
    let all = journal(&host, "");
    assert!(all.contains("policy loaded"), "{all}");
    for line in all.lines() {
        assert!(
            !(line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[4] == b'-'),
            "a journal line carries its own timestamp: {line}"
        );
        assert!(
            !line.starts_with('<'),
            "an unparsed priority prefix: {line}"
        );
        assert!(
            !line.contains("Some("),
            "Debug formatting in the journal: {line}"
        );
    }
}
