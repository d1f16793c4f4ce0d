//! Issue 18, point 2: the exit-status table both binaries share (calseg_api::exit), with the
//! real binaries. `calseg-agent status` on a real enrolled host exits 2 once a certificate is
//! inside its renewal window and 1 once one has expired (the clock moved with faketime); the
//! server's commands that go through a stopped server exit 69, not 1. (`rollout status` and
//! `watch` while paused and after a rollback: rollout.rs.)

use calseg_tests::agent_host::{AgentWorld, describe, standin_policy};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const NODE: &str = "exit-codes";

fn at(json: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(json.as_str().expect("an RFC 3339 string"), &Rfc3339).expect("RFC 3339")
}

#[tokio::test]
async fn issue_18_agent_status_exits_2_when_renewal_is_due_and_1_when_expired() {
    calseg_tests::prereq::require_command("faketime", "faketime");
    let mut world = AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]"))
    })
    .await
    .expect("etcd, server and sandbox");
    let agent = &world.agent;
    agent.enroll(&world.server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let out = agent.agent("status --json").expect("status");
    assert_eq!(out.status.code(), Some(0), "fresh: {}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let identities = json["identities"].as_array().expect("identities").clone();
    assert!(!identities.is_empty(), "{json}");
    assert!(identities.iter().all(|i| i["expiry"] == "ok"), "{json}");
    assert_eq!(json["fleet_expiry"], "ok", "{json}");
    let first_renewal = identities
        .iter()
        .map(|i| at(&i["renew_at"]))
        .chain([at(&json["fleet_renew_at"])])
        .min()
        .expect("a renewal point");
    let first_end = identities
        .iter()
        .map(|i| at(&i["not_after"]))
        .min()
        .expect("an end");
    let last_end = identities
        .iter()
        .map(|i| at(&i["not_after"]))
        .chain([at(&json["fleet_not_after"])])
        .max()
        .expect("an end");
    assert!(
        first_renewal + time::Duration::minutes(2) < first_end,
        "{json}"
    );

    // Issue 18, point 7: `nodes show` on the enrolled node: its identities (serials and
    // expiries as the agent has them, RFC 3339), its last report's units, its audit tail.
    let show = world
        .server
        .cli_ok(&["nodes", "show", NODE])
        .expect("nodes show");
    for identity in &identities {
        let serial = identity["serial"].as_str().expect("serial");
        let not_after = identity["not_after"].as_str().expect("not_after");
        let line = show
            .lines()
            .find(|l| l.contains(serial))
            .unwrap_or_else(|| panic!("serial {serial} not in:\n{show}"));
        assert!(
            line.contains(not_after) && line.contains(identity["etcd_user"].as_str().unwrap()),
            "{line}"
        );
    }
    eprintln!("nodes show {NODE}:\n{show}");
    // The enrolled key, the one the agent holds: sha256 of its fleet certificate's public key.
    let fleet = world
        .agent
        .host
        .exec_ok("cat /var/lib/calseg/agent/fleet.pem")
        .expect("fleet.pem");
    let info = calseg_agent::keys::cert_info(&fleet).expect("the fleet certificate");
    let key = calseg_api::fingerprint::of_public_key(&info.public_key_der);
    assert!(
        show.lines().any(|l| l == format!("key:         {key}")),
        "{key} not in:\n{show}"
    );
    let units = json["units"].as_array().expect("units");
    assert!(!units.is_empty(), "{json}");
    for unit in units {
        assert!(show.contains(unit["unit"].as_str().unwrap()), "{show}");
    }
    assert!(
        show.contains("identities:")
            && show.contains("last report: revision")
            && show.contains("audit (last 10"),
        "{show}"
    );
    assert!(
        show.lines()
            .any(|l| l.contains("issue") && l.contains(" ok")),
        "{show}"
    );
    let shown: serde_json::Value = serde_json::from_str(
        &world
            .server
            .cli_ok(&["nodes", "show", NODE, "-o", "json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        shown["identities"].as_array().map(Vec::len),
        Some(identities.len()),
        "{shown}"
    );

    // The host's clock as faketime moves it; the agent runs without the server (status
    // opens no socket), so the server is stopped to show it.
    world.server.stop();
    let now = OffsetDateTime::now_utc();
    let status_in = |ahead: time::Duration| {
        agent
            .host
            .exec(&format!(
                "faketime -f +{}s {} status",
                ahead.whole_seconds(),
                calseg_tests::bins::path("calseg-agent").display()
            ))
            .expect("status under faketime")
    };
    let due = status_in(first_renewal - now + time::Duration::minutes(1));
    let text = describe(&due);
    assert_eq!(
        due.status.code(),
        Some(2),
        "inside the renewal window: {text}"
    );
    assert!(text.contains("renewal due"), "{text}");
    let expired = status_in(last_end - now + time::Duration::minutes(1));
    let text = describe(&expired);
    assert_eq!(expired.status.code(), Some(1), "expired: {text}");
    assert!(text.contains("EXPIRED"), "{text}");
    // And the real clock: still healthy.
    let out = agent.agent("status").expect("status");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[tokio::test]
async fn issue_18_server_commands_exit_69_when_the_server_is_down() {
    let etcd = calseg_tests::etcd::EtcdCluster::start()
        .await
        .expect("etcd");
    let mut server = calseg_tests::server::ServerProcess::start(
        &etcd,
        &standin_policy(&etcd.endpoint(0), &format!("names = [\"{NODE}\"]")),
        "",
    )
    .await
    .expect("server");
    let up = server.cli(&["nodes", "list"]).expect("nodes list");
    assert_eq!(up.status.code(), Some(0), "{}", describe(&up));
    server.stop();
    for args in [
        &["nodes", "list"][..],
        &["rollout", "status"],
        &["token", "list"],
        &["audit"],
    ] {
        let out = server.cli(args).expect("run");
        let text = describe(&out);
        assert_eq!(out.status.code(), Some(69), "{args:?}: {text}");
        assert!(
            text.contains("cannot reach the calseg server"),
            "{args:?}: {text}"
        );
    }
    // A bad flag value is a usage error (64) before any server is asked; a failure that is
    // not about reaching the server stays 1.
    let out = server
        .cli(&["token", "create", "--node", "x", "--ttl", "soon"])
        .expect("run");
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let out = server
        .cli(&["check", "--policy", "/nonexistent/policy.toml"])
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

/// Issue 18, point 7: one duration grammar, and `-o json|wide`. `--ttl 1h30m` (refused before, accepted in
/// agent.toml) makes a token valid for 90 minutes; a month (`5M`, not minutes) is refused
/// naming the flag and the value, and no token is made.
#[tokio::test]
async fn issue_18_ttl_takes_1h30m_and_refuses_months_naming_the_flag() {
    let etcd = calseg_tests::etcd::EtcdCluster::start()
        .await
        .expect("etcd");
    let server = calseg_tests::server::ServerProcess::start(
        &etcd,
        &standin_policy(&etcd.endpoint(0), &format!("names = [\"{NODE}\"]")),
        "",
    )
    .await
    .expect("server");
    let before = OffsetDateTime::now_utc();
    let out = server
        .cli(&[
            "token", "create", "--node", NODE, "--ttl", "1h30m", "--json",
        ])
        .expect("token create");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let lives = at(&json["expires_at"]) - before;
    assert!(
        (time::Duration::minutes(89)..=time::Duration::minutes(91)).contains(&lives),
        "{json}"
    );
    let listed = server.cli_ok(&["token", "list", "--json"]).expect("list");
    // Issue 18, point 7: the table shows the scope in words and times to the second.
    let table = server.cli_ok(&["token", "list"]).expect("list");
    let expires = calseg_api::when::rfc3339(&at(&json["expires_at"]));
    assert!(
        table.contains(&format!("node {NODE}"))
            && table.contains(&expires)
            && table.contains("0/1"),
        "{table}"
    );
    assert!(
        !table.contains('{') && !table.contains("\"node\""),
        "{table}"
    );
    // `-o json` is `--json`; `-o wide` adds columns; both at once is a usage error.
    assert_eq!(
        server
            .cli_ok(&["token", "list", "-o", "json"])
            .expect("list"),
        listed
    );
    let wide = server
        .cli_ok(&["token", "list", "-o", "wide"])
        .expect("list");
    assert!(
        wide.contains("CREATED BY") && wide.contains("admin:"),
        "{wide}"
    );
    let both = server
        .cli(&["token", "list", "--json", "-o", "wide"])
        .expect("run");
    assert_eq!(both.status.code(), Some(64), "{}", describe(&both));
    let out = server
        .cli(&["token", "create", "--node", NODE, "--ttl", "5M"])
        .expect("token create");
    let text = describe(&out);
    assert_eq!(out.status.code(), Some(64), "a usage error: {text}");
    assert!(
        text.contains("--ttl <DURATION>")
            && text.contains("\"5M\" uses `M`: months and years have no fixed length"),
        "{text}"
    );
    assert_eq!(
        server.cli_ok(&["token", "list", "--json"]).expect("list"),
        listed
    );
}
