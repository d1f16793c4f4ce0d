//! Issue 8 (agent side): an agent configured with several server URLs fails over between them.
//! The real calseg-agent in a sandboxed host with real systemd, the real calseg-server, a real
//! etcd. The second "replica" is a loopback port nothing listens on, so the tests stand on
//! what exists without the shared store: the dead URL must be skipped, and a server that goes
//! away and comes back on its port must be picked up again.

use calseg_tests::agent_host::{AgentHost, AgentWorld, STANDIN_UNIT, standin_policy};
use calseg_tests::ports::free_port;
use calseg_tests::server::ServerProcess;
use std::time::Duration;

/// The log line of a switch (client/servers.rs).
const SWITCH: &str = "failing over to the next server";

/// `https://127.0.0.1:PORT` with nothing listening on PORT.
fn dead_url() -> String {
    format!("https://127.0.0.1:{}", free_port().expect("port"))
}

/// `calseg-agent status --json`, decoded.
fn status(agent: &AgentHost) -> serde_json::Value {
    let output = agent.agent("status --json").expect("status");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "status is not JSON ({e}): {}",
            calseg_tests::agent_host::describe(&output)
        )
    })
}

async fn world(node: &str, servers: impl Fn(&ServerProcess) -> Vec<String>) -> AgentWorld {
    let world = AgentWorld::start(node, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{node}\"]"))
    })
    .await
    .expect("etcd, server and sandbox");
    let urls = servers(&world.server);
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    world.agent.write_config_servers(&urls).expect("agent.toml");
    world
        .agent
        .count_standin_starts()
        .await
        .expect("count starts");
    world
}

#[tokio::test]
async fn a_dead_first_server_is_skipped_at_enrollment_and_in_a_cycle_and_the_switch_sticks() {
    let dead = dead_url();
    let w = world("failover-node1", |server| vec![dead.clone(), server.url()]).await;
    let real = w.server.url();

    // Enrollment tries the dead server first, then enrolls with the live one.
    w.agent
        .enroll(&w.server)
        .expect("enroll past a dead server");
    let s = status(&w.agent);
    assert_eq!(s["server"], real.as_str(), "{s:#}");
    assert_eq!(s["servers"], serde_json::json!([dead, real]), "{s:#}");

    // Forget which server answered, so the cycle starts at the dead one again.
    w.agent
        .host
        .exec_ok("rm -f /var/lib/calseg/agent/server.current")
        .expect("rm");
    let (code, out) = w.agent.once().expect("once");
    assert_eq!(code, 2, "the cycle must install and converge:\n{out}");
    // Logged once for the switch, not once per request of the cycle (manifest, sign, lease,
    // report all went to the live server).
    assert_eq!(out.matches(SWITCH).count(), 1, "{out}");
    assert!(out.contains(&dead) && out.contains(&real), "{out}");
    let unit = w.agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
    assert_eq!(unit.active_state, "active", "{unit:?}\n{out}");
    assert_eq!(w.agent.standin_starts(), 1, "restarted once:\n{out}");
    assert!(
        w.agent
            .host
            .path("/etc/calico/certs/calico-node/cert.pem")
            .exists()
    );
    assert_eq!(status(&w.agent)["server"], real.as_str());

    // The next cycle goes straight to the server in use: no switch, nothing to do.
    let (code, out) = w.agent.once().expect("once");
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(SWITCH), "{out}");
    assert_eq!(w.agent.standin_starts(), 1);
}

#[tokio::test]
async fn the_agent_rides_out_every_server_down_and_recovers_when_one_returns() {
    let dead = dead_url();
    let mut w = world("failover-node2", |server| vec![server.url(), dead.clone()]).await;
    w.agent.enroll(&w.server).expect("enroll");

    // Every server down: the cycle fails naming both, and the server in use stays.
    w.server.kill_hard().expect("server was running");
    let (code, out) = w.agent.once().expect("once");
    assert_eq!(code, 69, "unreachable, not failed: {out}");
    assert!(
        out.contains("any of 2 servers") && out.contains(&dead) && out.contains(&w.server.url()),
        "{out}"
    );
    assert!(!out.contains(SWITCH), "{out}");
    assert_eq!(status(&w.agent)["server"], w.server.url().as_str());

    // The daemon keeps trying (backoff) while the server is down ...
    w.agent.start_daemon().expect("agent daemon");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // ... and converges once it is back on its port.
    w.server.restart().await.expect("server back");
    let cert = w.agent.host.path("/etc/calico/certs/calico-node/cert.pem");
    let mut converged = false;
    for _ in 0..240 {
        let unit = w.agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
        if cert.exists() && unit.active_state == "active" {
            let s = status(&w.agent);
            let outcome = &s["last_cycle"]["outcome"];
            if outcome == "changed" || outcome == "unchanged" {
                converged = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = w.agent.daemon_log();
    assert!(
        converged,
        "no convergence after the server came back:\n{log}"
    );
    assert_eq!(w.agent.standin_starts(), 1, "{log}");
    // The dead server never answered, so the agent never switched away from the real one.
    assert!(!log.contains(SWITCH), "{log}");
    assert_eq!(status(&w.agent)["server"], w.server.url().as_str());
}
