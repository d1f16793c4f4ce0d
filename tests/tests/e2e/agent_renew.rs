//! Issue 18, point 7: `calseg-agent renew [--component C]` with the real agent in a sandboxed
//! systemd host. It renews a certificate that is not due: a new key and serial, signed by the
//! real server (audited), installed, the unit restarted, exit 2 as a `once` that changed
//! something; a component the manifest lacks is refused (exit 1) and nothing changes.

use calseg_tests::agent_host::{AgentWorld, describe, standin_policy};

const NODE: &str = "renew-1";

fn serials(agent: &calseg_tests::agent_host::AgentHost) -> Vec<(String, String)> {
    let out = agent.agent("status --json").expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    json["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| {
            (
                i["component"].as_str().unwrap().to_owned(),
                i["serial"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn key_of(agent: &calseg_tests::agent_host::AgentHost, component: &str) -> Vec<u8> {
    std::fs::read(
        agent
            .host
            .path(&format!("/etc/calico/certs/{component}/key.pem")),
    )
    .unwrap_or_default()
}

#[tokio::test]
async fn issue_18_renew_makes_a_new_key_and_certificate_now_and_restarts_the_unit() {
    let world = AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]"))
    })
    .await
    .expect("etcd, server and sandbox");
    let (server, agent) = (&world.server, &world.agent);
    agent.enroll(server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 0, "nothing due: {out}");
    let before = serials(agent);
    let (component, old_serial) = before.first().cloned().expect("an identity");
    let old_key = key_of(agent, &component);
    assert!(
        !old_key.is_empty(),
        "no key at the default path for {component}"
    );
    agent.count_standin_starts().await.expect("count starts");

    let bad = agent.agent("renew --component no-such").expect("renew");
    let text = describe(&bad);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains("\"no-such\"") && text.contains(&component),
        "{text}"
    );
    assert_eq!(serials(agent), before, "nothing renewed");

    let out = agent
        .agent(&format!("renew --component {component}"))
        .expect("renew");
    let text = describe(&out);
    assert_eq!(out.status.code(), Some(2), "renewed and converged: {text}");
    assert!(text.contains("renewal forced"), "{text}");
    let after = serials(agent);
    let new_serial = &after
        .iter()
        .find(|(c, _)| *c == component)
        .expect("still there")
        .1;
    assert_ne!(new_serial, &old_serial, "a new certificate");
    assert_ne!(key_of(agent, &component), old_key, "a new key");
    assert!(agent.standin_starts() >= 1, "the unit was restarted");
    let audit = server.cli_ok(&["audit"]).expect("audit");
    assert!(
        audit
            .lines()
            .any(|l| l.contains(" issue ") && l.contains(new_serial.as_str())),
        "{audit}"
    );
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 0, "converged after the renewal: {out}");
}
