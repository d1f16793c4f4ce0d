//! Issue 16, item 2 end to end: calseg knows which etcd it configures. The real calseg-server
//! reads every endpoint's release from the harness etcd (whatever release the harness runs:
//! Debian 12's 3.4.23 from PATH, or another through `CALSEG_ETCD_BIN_DIR`), and `plan`, the
//! server's log, its metrics and `rollout status` name the known RBAC bypasses of it;
//! `[etcd] refuse_known_bypasses = true` makes `apply` and `serve` refuse the cluster without
//! touching etcd's auth store; an endpoint that does not answer is named, and nothing fails.

use calseg_server::etcd_release::{self, Reported};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::ports::free_port;
use calseg_tests::server::ServerProcess;

fn policy(endpoint: &str, nodes: &[&str]) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
restart = ["calico-node.service"]
[[hosts]]
names = {nodes:?}
components = ["calico-node"]
"#
    )
}

/// A fresh harness etcd, the release it reports (read from etcd itself) and the advisories
/// that release must be named with; fails unless it has some (these tests need one).
async fn affected_etcd() -> (EtcdCluster, String, Vec<String>) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let version = etcd.server_version().await.expect("etcd status");
    let expected = expected_advisories(&version);
    assert!(
        !expected.is_empty(),
        "this test needs an etcd release with known RBAC bypasses; the harness etcd reports {version}"
    );
    (etcd, version, expected)
}

/// The advisories `version` must be named with. For the releases Debian ships the list is
/// written out here, so a wrong row in calseg's table fails this test rather than being
/// copied into its expectation; for another release, the table decides.
fn expected_advisories(version: &str) -> Vec<String> {
    let written: &[&str] = match version {
        "3.4.23" => &[
            "GHSA-xg4h-6gfc-h4m8",
            "GHSA-rfx7-8w68-q57q",
            "GHSA-x35m-3gp4-4fh5",
            "GHSA-q8m4-xhhv-38mg",
            "GHSA-3p4g-rcw5-8298",
        ],
        "3.5.16" => &[
            "GHSA-xg4h-6gfc-h4m8",
            "GHSA-rfx7-8w68-q57q",
            "GHSA-x35m-3gp4-4fh5",
            "GHSA-q8m4-xhhv-38mg",
        ],
        _ => {
            return etcd_release::affecting(&Reported::from_status(version))
                .into_iter()
                .map(|(advisory, _)| advisory.id.to_owned())
                .collect();
        }
    };
    written.iter().map(|id| (*id).to_owned()).collect()
}

/// Replaces the `[etcd]` line starting with `key = ` in the server's server.toml.
fn set_etcd_option(server: &ServerProcess, key: &str, line: &str) {
    let path = server.config_path();
    let text = std::fs::read_to_string(&path).expect("read server.toml");
    let prefix = format!("{key} = ");
    assert!(
        text.lines().any(|l| l.starts_with(&prefix)),
        "server.toml has no `{key}` line:\n{text}"
    );
    let edited: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with(&prefix) { line } else { l })
        .collect();
    std::fs::write(&path, edited.join("\n") + "\n").expect("write server.toml");
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn plan_log_metrics_and_status_name_the_known_bypasses_of_the_release_etcd_reports() {
    let (etcd, version, expected) = affected_etcd().await;
    let endpoint = etcd.endpoint(0);
    let server = ServerProcess::start(&etcd, &policy(&endpoint, &["node1"]), "")
        .await
        .expect("server");

    // `plan` straight to etcd: its own check, before the diff.
    let direct = server.cli(&["plan", "--direct"]).expect("plan --direct");
    let said = stderr(&direct);
    assert!(matches!(direct.status.code(), Some(0 | 2)), "{said}");
    let warning = format!("warning: etcd at {endpoint} runs {version}, which has ");
    assert!(said.contains(&warning), "{said}");
    for id in &expected {
        assert!(said.contains(id.as_str()), "{id} missing:\n{said}");
    }
    if version == "3.4.23" {
        // The line ended without the watch fix; the other fixes have their 3.4 release.
        assert!(
            said.contains(
                "GHSA-xg4h-6gfc-h4m8 (CVE-2026-73499) (no fix known in 3.4; fixed in 3.5.33, 3.6.14, 3.7.1)"
            ),
            "{said}"
        );
        assert!(
            said.contains("GHSA-rfx7-8w68-q57q (CVE-2026-33343) (fixed in 3.4.42)"),
            "{said}"
        );
    }
    if version == "3.5.16" {
        assert!(
            said.contains("GHSA-xg4h-6gfc-h4m8 (CVE-2026-73499) (fixed in 3.5.33)"),
            "{said}"
        );
    }

    // `plan` through the running server: the server's own check, in its answer.
    let via = server.cli(&["plan"]).expect("plan");
    assert!(matches!(via.status.code(), Some(0 | 2)), "{}", stderr(&via));
    assert!(stderr(&via).contains(&warning), "{}", stderr(&via));

    // The server logged it at start.
    let log = server.log();
    assert!(
        log.contains(&format!("etcd at {endpoint} runs {version}, which has ")),
        "{log}"
    );

    // Metrics: one member_info series, one bypass series per advisory, nothing else.
    let scrape = server.scrape().await.expect("scrape");
    let info =
        format!("calseg_etcd_member_info{{endpoint=\"{endpoint}\",version=\"{version}\"}} 1");
    assert!(scrape.lines().any(|l| l == info), "{info}:\n{scrape}");
    for id in &expected {
        let series =
            format!("calseg_etcd_known_rbac_bypass{{endpoint=\"{endpoint}\",advisory=\"{id}\"}} 1");
        assert!(scrape.lines().any(|l| l == series), "{series}:\n{scrape}");
    }
    let bypass_series = scrape
        .lines()
        .filter(|l| l.starts_with("calseg_etcd_known_rbac_bypass{"))
        .count();
    assert_eq!(bypass_series, expected.len(), "{scrape}");

    // The status the administrators see.
    let status = server.rollout_status().expect("rollout status");
    assert_eq!(
        status.etcd.as_deref(),
        Some(
            format!(
                "etcd {version} on 1/1 members: {} known RBAC bypasses",
                expected.len()
            )
            .as_str()
        )
    );
    let text = server
        .cli_ok(&["rollout", "status"])
        .expect("rollout status");
    assert!(
        text.contains(&format!("etcd {version} on 1/1 members")),
        "{text}"
    );
}

#[tokio::test]
async fn refuse_known_bypasses_makes_apply_and_serve_refuse_and_leaves_etcd_unchanged() {
    let (etcd, version, expected) = affected_etcd().await;
    let endpoint = etcd.endpoint(0);
    let mut server = ServerProcess::start(&etcd, &policy(&endpoint, &["node1"]), "")
        .await
        .expect("server");
    // Nothing else changes etcd from here on.
    server.stop();
    set_etcd_option(
        &server,
        "refuse_known_bypasses",
        "refuse_known_bypasses = true",
    );
    // A policy with one more node: applying it would add a user and a role.
    let wider = server.dir().join("wider.toml");
    std::fs::write(&wider, policy(&endpoint, &["node1", "node2"])).expect("write policy");
    let wider = wider.display().to_string();

    let before = etcd.auth_snapshot().await.expect("auth snapshot");
    // `plan` (straight to etcd: the server is stopped) still only warns, and shows there is
    // something to apply.
    let planned = server
        .cli(&["plan", "--direct", "--policy", &wider])
        .expect("plan");
    assert_eq!(planned.status.code(), Some(2), "{}", stderr(&planned));
    assert!(
        String::from_utf8_lossy(&planned.stdout).contains("calico-node.node2"),
        "{planned:?}"
    );
    assert!(stderr(&planned).contains("warning: etcd at"), "{planned:?}");

    let applied = server.cli(&["apply", "--policy", &wider]).expect("apply");
    let said = stderr(&applied);
    assert_eq!(applied.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "error: etcd at {endpoint} runs {version}, which has known RBAC bypasses {}",
            expected[0]
        )),
        "{said}"
    );
    assert!(said.contains("refuse_known_bypasses = true"), "{said}");
    assert!(!said.contains("Applied"), "{said}");
    assert_eq!(
        etcd.auth_snapshot().await.expect("auth snapshot"),
        before,
        "a refused apply changed etcd's auth store"
    );

    // `serve` refuses to start, before it touches etcd.
    let refused = server
        .restart()
        .await
        .expect_err("serve must refuse a cluster with known bypasses");
    let refused = format!("{refused:#}");
    assert!(refused.contains("exited at start"), "{refused}");
    assert!(
        refused.contains("refuse_known_bypasses = true"),
        "{refused}"
    );
    assert!(
        refused.contains(&format!("etcd at {endpoint} runs {version}")),
        "{refused}"
    );
    assert_eq!(
        etcd.auth_snapshot().await.expect("auth snapshot"),
        before,
        "a refused serve changed etcd's auth store"
    );
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_named_and_nothing_fails() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let live = etcd.endpoint(0);
    let version = etcd.server_version().await.expect("etcd status");
    // Nothing listens here (the port was free a moment ago and is handed to no one else).
    let silent = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut server = ServerProcess::start(&etcd, &policy(&live, &["node1"]), "")
        .await
        .expect("server");

    let planned = server
        .cli(&[
            "plan",
            "--direct",
            "--etcd-endpoint",
            &live,
            "--etcd-endpoint",
            &silent,
        ])
        .expect("plan");
    let said = stderr(&planned);
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        said.contains(&format!(
            "warning: etcd at {silent} did not report its version ("
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("warning: etcd at {live} runs {version}")),
        "{said}"
    );
    assert!(matches!(planned.status.code(), Some(0..=2)), "{said}");

    // The running server with the silent endpoint in its configuration starts, names it, and
    // reports the member that answered.
    server.stop();
    set_etcd_option(
        &server,
        "endpoints",
        &format!("endpoints = [\"{live}\", \"{silent}\"]"),
    );
    server
        .restart()
        .await
        .expect("serve with a silent endpoint");
    let log = server.log();
    assert!(
        log.contains(&format!("etcd at {silent} did not report its version")),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let scrape = server.scrape().await.expect("scrape");
    let info = format!("calseg_etcd_member_info{{endpoint=\"{live}\",version=\"{version}\"}} 1");
    assert!(scrape.lines().any(|l| l == info), "{info}:\n{scrape}");
    assert!(
        !scrape.lines().any(|l| l.starts_with("calseg_etcd_")
            && l.contains(&silent)
            && !l.starts_with("calseg_etcd_up{")),
        "{scrape}"
    );
    // Reachability (issue 18 point 6): the silent endpoint is down, the live one up.
    for (endpoint, up) in [(&live, 1), (&silent, 0)] {
        let line = format!("calseg_etcd_up{{endpoint=\"{endpoint}\"}} {up}");
        assert!(scrape.lines().any(|l| l == line), "{line}:\n{scrape}");
    }
    let status = server.rollout_status().expect("rollout status");
    let line = status.etcd.expect("an etcd status line");
    assert!(
        line.starts_with(&format!("etcd {version} on 1/2 members: ")),
        "{line}"
    );
}
