//! Issue 18 point 6: the real agent writes the node_exporter textfile `calseg.prom` into
//! agent.toml's `[metrics] textfile_dir` after each cycle: mode 0644 whatever the umask (the
//! unit runs with UMask=0077), each certificate's expiry equal to the server's record of it,
//! the last cycle's time and outcome, and `revoked` once the server revokes the node; promtool
//! accepts it.

use crate::metrics::sample;
use calseg_tests::agent_host::{AgentWorld, describe, standin_policy};
use calseg_tests::bins;
use calseg_tests::promtool::check_metrics;
use std::os::unix::fs::PermissionsExt;

const NODE: &str = "worker-7";
const DIR: &str = "/var/lib/prometheus/node-exporter";

#[tokio::test]
async fn the_agent_writes_its_textfile_after_each_cycle_with_mode_0644_and_the_server_s_expiry() {
    let world = AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]"))
    })
    .await
    .expect("etcd, server and sandbox");
    let (server, agent) = (&world.server, &world.agent);
    let config = std::fs::read_to_string(agent.host.path("/etc/calseg/agent.toml")).expect("toml");
    agent
        .host
        .write_file(
            "/etc/calseg/agent.toml",
            &format!("{config}[metrics]\ntextfile_dir = \"{DIR}\"\n"),
            0o644,
        )
        .expect("agent.toml");
    agent
        .host
        .exec_ok(&format!("mkdir -p {DIR}"))
        .expect("mkdir");
    agent.enroll(server).expect("enroll");
    let once = || {
        let out = agent
            .host
            .exec(&format!(
                "umask 077; {} once",
                bins::path("calseg-agent").display()
            ))
            .expect("once");
        (out.status.code(), describe(&out))
    };
    let (code, out) = once();
    assert_eq!(code, Some(2), "{out}");

    let path = agent.host.path(&format!("{DIR}/calseg.prom"));
    let text = std::fs::read_to_string(&path).expect("calseg.prom");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "{text}");
    check_metrics(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    let scrape = server.scrape().await.expect("scrape");
    for component in ["calico-node", "fleet"] {
        let server_says = sample(
            &scrape,
            &format!(
                "calseg_certificate_expiration_timestamp_seconds{{node=\"{NODE}\",component=\"{component}\"}}"
            ),
        );
        let agent_says = sample(
            &text,
            &format!(
                "calseg_agent_certificate_expiration_timestamp_seconds{{component=\"{component}\"}}"
            ),
        );
        assert!(server_says.is_some(), "{component}: {scrape}");
        assert_eq!(agent_says, server_says, "{component}:\n{text}\n{scrape}");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let at = sample(&text, "calseg_agent_last_cycle_timestamp_seconds").expect("time");
    assert!(at <= now && at > now - 120.0, "{at} {now}");
    assert_eq!(
        sample(
            &text,
            r#"calseg_agent_last_cycle_outcome{outcome="changed"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "calseg_agent_last_cycle_success"), Some(1.0));
    assert_eq!(sample(&text, "calseg_agent_revoked"), Some(0.0), "{text}");

    // Revoked: the next cycle's file says so.
    let out = server.cli(&["nodes", "revoke", NODE]).expect("revoke");
    assert!(out.status.success(), "{}", describe(&out));
    let (code, out) = once();
    assert_eq!(code, Some(77), "{out}");
    let text = std::fs::read_to_string(&path).expect("calseg.prom");
    assert_eq!(sample(&text, "calseg_agent_revoked"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"calseg_agent_last_cycle_outcome{outcome="revoked"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "calseg_agent_last_cycle_success"), Some(0.0));
    check_metrics(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
}
