//! Issue 18, point 4: the real agent on a revoked node. After `calseg-server nodes revoke`,
//! `calseg-agent once` and `status` say `revoked` (exit 77, not "unreachable" or "failed"),
//! with when it was learned and what to do, the agent logs it once across passes and never
//! claims its certificates keep working; the daemon stops asking the server and starts a pass
//! as soon as the node is enrolled again; `enroll --force` with a new token makes it work.

use calseg_tests::agent_host::{AgentHost, AgentWorld, describe, standin_policy};
use calseg_tests::server::ServerProcess;
use std::time::{Duration, Instant};

const NODE: &str = "worker-5";
/// `calseg-agent`'s exit status for a revoked node (agent/src/cli EXIT_REVOKED).
const EXIT_REVOKED: i32 = 77;
/// The agent's one error line about the revocation.
const SAID: &str = "the server says this node was revoked";

async fn world() -> AgentWorld {
    AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]"))
    })
    .await
    .expect("etcd, server and sandbox")
}

fn revoke(server: &ServerProcess) {
    let out = server.cli(&["nodes", "revoke", NODE]).expect("revoke");
    assert!(out.status.success(), "{}", describe(&out));
}

fn enroll_again(agent: &AgentHost, server: &ServerProcess) {
    let token = server.token_for(NODE, "10m").expect("token");
    let out = agent
        .agent(&format!(
            "enroll --force --ca-hash {} --token {token}",
            server.fleet_ca_hash()
        ))
        .expect("enroll");
    assert!(out.status.success(), "{}", describe(&out));
}

/// How often the server refused a call as `node_revoked` (its denial counter).
async fn revoked_denials(server: &ServerProcess) -> u64 {
    let text = server.scrape().await.expect("scrape");
    text.lines()
        .find(|l| l.starts_with("calseg_requests_denied_total{kind=\"node_revoked\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn once_and_status_say_revoked_log_it_once_and_a_new_enrollment_works_again() {
    let world = world().await;
    let (server, agent) = (&world.server, &world.agent);
    agent.enroll(server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "{out}");

    revoke(server);
    let (code, first) = agent.once().expect("once");
    assert_eq!(code, EXIT_REVOKED, "{first}");
    assert_eq!(first.matches(SAID).count(), 1, "{first}");
    for expected in [
        "ERROR",
        "node_revoked",
        "enroll --force --token",
        "token create --node worker-5",
        "cycle revoked",
    ] {
        assert!(first.contains(expected), "no {expected:?} in:\n{first}");
    }
    for wrong in ["keeps working", "unreachable", "Revoked"] {
        assert!(!first.contains(wrong), "{wrong:?} in:\n{first}");
    }
    let (code, second) = agent.once().expect("once");
    assert_eq!(code, EXIT_REVOKED, "{second}");
    assert_eq!(second.matches(SAID).count(), 0, "logged again:\n{second}");
    assert!(!second.contains("keeps working"), "{second}");

    let out = agent.agent("status").expect("status");
    let text = describe(&out);
    assert_eq!(out.status.code(), Some(EXIT_REVOKED), "{text}");
    assert!(
        text.contains("revoked:     yes, since ")
            && text.contains("enroll --force --token")
            && text.contains("last cycle:  revoked at"),
        "{text}"
    );
    assert!(!text.contains("Revoked"), "{text}");
    let out = agent.agent("status --json").expect("status --json");
    assert_eq!(out.status.code(), Some(EXIT_REVOKED), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let learned = json["revoked"]["learned_at"].as_str().unwrap_or_default();
    assert!(learned.ends_with('Z') && learned.len() == 20, "{json}");
    assert!(
        json["revoked"]["what_to_do"]
            .as_str()
            .unwrap_or_default()
            .contains("calseg-agent enroll --force --token"),
        "{json}"
    );
    assert_eq!(json["last_cycle"]["outcome"], "revoked", "{json}");

    // Back with a new token: the revoked state goes, and the agent works again.
    enroll_again(agent, server);
    let out = agent.agent("status --json").expect("status --json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(json["revoked"].is_null(), "{json}");
    server.wait_rbac_applied().await.expect("rbac");
    let (code, out) = agent.once().expect("once");
    assert_eq!(
        code, 2,
        "the agent did not rotate to its new identity:\n{out}"
    );
    assert!(!out.contains("revoked"), "{out}");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 0, "{out}");
    let out = agent.agent("status").expect("status");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[tokio::test]
async fn the_daemon_stops_asking_a_server_that_revoked_it_and_resumes_after_enrollment() {
    let world = world().await;
    let (server, agent) = (&world.server, &world.agent);
    agent.enroll(server).expect("enroll");
    // No jitter: a pass every 10 s unless the agent backs off.
    agent
        .host
        .write_file(
            "/etc/calseg/agent.toml",
            &format!(
                "server = \"{}\"\nnode = \"{NODE}\"\nstate_dir = \"/var/lib/calseg/agent\"\n\
                 restart_timeout = \"8s\"\ninterval = \"10s\"\njitter = \"0s\"\n",
                server.url()
            ),
            0o644,
        )
        .expect("agent.toml");
    agent.start_daemon().expect("daemon");
    let wait_for = |what: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if agent.daemon_log().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no {what:?} within {secs} s:\n{}", agent.daemon_log());
    };
    wait_for("outcome=\"changed\"", 60);

    revoke(server);
    // The daemon learns it from its long-poll or its next pass, within an interval or so.
    wait_for(SAID, 40);
    wait_for("outcome=\"revoked\"", 10);
    let learned = revoked_denials(server).await;
    // Three intervals: a daemon that kept asking would make several more calls.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let log = agent.daemon_log();
    assert_eq!(
        revoked_denials(server).await,
        learned,
        "the revoked daemon kept calling the server:\n{log}"
    );
    assert_eq!(log.matches(SAID).count(), 1, "{log}");
    assert!(!log.contains("keeps working"), "{log}");

    // A new enrollment: the daemon notices without asking the server and works again.
    enroll_again(agent, server);
    server.wait_rbac_applied().await.expect("rbac");
    wait_for("this node was enrolled again; starting a pass", 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = agent.daemon_log();
        let after = log
            .split("this node was enrolled again")
            .nth(1)
            .unwrap_or_default();
        if after.contains("outcome=\"changed\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pass after enrollment:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = agent.agent("status --json").expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(json["revoked"].is_null(), "{json}");
}
