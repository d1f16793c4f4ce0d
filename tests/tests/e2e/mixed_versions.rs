//! Issue 22, mixed-version fleets (docs/compatibility.md): "a server serves agents of the
//! previous release; an agent works with the previous server". The previous release's
//! `calseg-server` and `calseg-agent` are built from their pinned commit
//! ([`calseg_tests::previous_release`], cached under target/compat/) and run against this
//! workspace's: (a) the old agent with the new server, (b) the new agent with the old server
//! (initialized by its own `init`). Each pair goes through enrollment with a token, a first
//! cycle that installs the identity and starts the stand-in calico-node unit, a forced renewal
//! (`calseg-agent renew`: a new serial, the unit restarted), and a rollout in waves of a policy
//! change (cert_mode) that the agent daemon converges to with one restart, as the server's
//! rollout status shows. A report from a newer agent, with a status and fields neither server
//! knows, is accepted by both and its status shown as sent.

use calseg_tests::agent_host::{AgentHost, STANDIN_UNIT, describe};
use calseg_tests::api_client::{call, enroll_auto};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::previous_release::{self, PREVIOUS_RELEASE};
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::path::Path;
use std::time::{Duration, Instant};

const CERT: &str = "/etc/calico/certs/calico-node/cert.pem";

fn policy(endpoint: &str, cert_mode: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[identity]
lifetime = "2h"
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["{STANDIN_UNIT}"]
env_file = "/etc/calico/calico-node.env"
cert_mode = "{cert_mode}"
[[hosts]]
match = "mixed-*"
components = ["calico-node"]
[rollout]
max_unavailable = 1
canary = 1
wave = "50%"
bake = "0s"
"#
    )
}

/// The serial of the installed calico-node certificate, as `calseg-agent status --json` says.
fn serial(agent: &AgentHost) -> String {
    let out = agent.agent("status --json").expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", describe(&out)));
    json["identities"]
        .as_array()
        .and_then(|ids| ids.iter().find(|i| i["component"] == "calico-node"))
        .and_then(|i| i["serial"].as_str())
        .unwrap_or_else(|| panic!("no calico-node identity in {json}"))
        .to_owned()
}

/// Mode (octal digits) of the installed certificate.
fn cert_mode(agent: &AgentHost) -> String {
    let out = agent
        .host
        .exec(&format!("stat -L -c %a {CERT}"))
        .expect("stat");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Enroll, a first cycle, a renewal and a rollout, with `server_binary` serving and
/// `agent_binary` on node `node`.
async fn enroll_cycle_renew_rollout(node: &str, server_binary: &Path, agent_binary: &Path) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let endpoint = etcd.endpoint(0);
    let server =
        ServerProcess::start_with_binary(&etcd, &policy(&endpoint, "0644"), "", server_binary)
            .await
            .expect("server");
    server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    let agent = AgentHost::boot_with_binary(node, &server, agent_binary)
        .await
        .expect("sandbox");

    // Enrollment with a one-time token.
    agent.enroll(&server).expect("enroll");
    agent.count_standin_starts().await.expect("drop-in");

    // A first cycle: the identity installed, the stand-in started with it. Until the
    // reconciler has created the node's etcd user, the agent's etcd check fails and it retries.
    server.wait_rbac_applied().await.expect("RBAC applied");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = agent.once().expect("once");
        if code == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the first cycle: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for file in [
        CERT,
        "/etc/calico/certs/calico-node/key.pem",
        "/etc/calico/certs/calico-node/ca.pem",
        "/etc/calico/calico-node.env",
    ] {
        assert!(agent.host.path(file).is_file(), "{file} was not installed");
    }
    assert_eq!(cert_mode(&agent), "644");
    assert_eq!(agent.standin_starts(), 1, "the stand-in started once");
    let unit = agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
    assert_eq!(unit.active_state, "active", "{unit:?}");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 0, "nothing more to do: {out}");
    let status = server.rollout_status().expect("rollout status");
    assert_eq!((status.converged, status.failed), (1, 0), "{status:#?}");

    // A renewal, not due: a new certificate, the unit restarted once.
    let first = serial(&agent);
    let out = agent.agent("renew").expect("renew");
    assert_eq!(
        out.status.code(),
        Some(2),
        "renewed and converged: {}",
        describe(&out)
    );
    let renewed = serial(&agent);
    assert_ne!(renewed, first, "a new certificate");
    assert_eq!(agent.standin_starts(), 2, "one restart for the renewal");
    let audit = server.cli_ok(&["audit"]).expect("audit");
    assert!(
        audit
            .lines()
            .any(|l| l.contains(" issue ") && l.contains(renewed.as_str())),
        "the server audited the renewal: {audit}"
    );

    // A rollout: a new cert mode, reloaded by the server, converged by the agent daemon with
    // one restart.
    agent.start_daemon().expect("calseg-agent run");
    std::fs::write(server.policy_path(), policy(&endpoint, "0640")).expect("policy");
    server.reload().expect("SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let status = server.rollout_status().expect("rollout status");
        let wave_done = status.waves.as_ref().is_some_and(|w| {
            w.to_revision == 2 && w.state == calseg_api::rollout::RolloutState::Done
        });
        if wave_done && status.policy_revision == Some(2) && status.converged == 1 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not converge in 60 s: {status:#?}\n{}\n{}",
            agent.daemon_log(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!((done.failed, done.pending), (0, 0), "{done:#?}");
    assert_eq!(cert_mode(&agent), "640", "the new policy installed");
    assert_ne!(serial(&agent), renewed, "the new policy's identity");
    // A moment more: a second restart would show now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        agent.standin_starts(),
        3,
        "one restart for the rollout\n{}",
        agent.daemon_log()
    );
    let unit = agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
    assert_eq!(unit.active_state, "active", "{unit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_an_agent_of_the_previous_release_works_with_this_server() {
    let old = previous_release::binaries()
        .await
        .unwrap_or_else(|e| panic!("the previous release ({PREVIOUS_RELEASE}): {e:#}"));
    let new_server = calseg_tests::bins::path("calseg-server");
    enroll_cycle_renew_rollout("mixed-old-agent", &new_server, &old.agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_this_agent_works_with_a_server_of_the_previous_release() {
    let old = previous_release::binaries()
        .await
        .unwrap_or_else(|e| panic!("the previous release ({PREVIOUS_RELEASE}): {e:#}"));
    let new_agent = calseg_tests::bins::path("calseg-agent");
    enroll_cycle_renew_rollout("mixed-new-agent", &old.server, &new_agent).await;
}

/// A report as an agent newer than both servers might send it: a status and fields neither
/// knows. Both the previous release's server and this one accept it (204), show the status as
/// sent (`nodes list`, as drift) and count the node by its revision and errors, as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_a_newer_agent_s_unknown_status_and_fields_are_kept_and_shown() {
    let old = previous_release::binaries()
        .await
        .unwrap_or_else(|e| panic!("the previous release ({PREVIOUS_RELEASE}): {e:#}"));
    for (which, binary) in [
        ("previous release", old.server),
        ("this release", calseg_tests::bins::path("calseg-server")),
    ] {
        let etcd = EtcdCluster::start().await.expect("etcd");
        let policy = policy(&etcd.endpoint(0), "0644");
        let server = ServerProcess::start_with_binary(
            &etcd,
            &policy,
            "auto_approve = [\"mixed-*\"]",
            &binary,
        )
        .await
        .expect("server");
        let nodes = enroll_auto(
            &server.url(),
            &server.fleet_ca_pem(),
            &["mixed-future".into()],
        )
        .await
        .expect("enroll");
        let node = &nodes[0];
        let manifest = node.manifest(None).await.expect("manifest");
        assert_eq!(manifest.status, StatusCode::OK, "{which}: {manifest:?}");
        let revision = manifest.body["revision"].as_str().expect("revision");
        let report = serde_json::json!({
            "revision": revision,
            "identities": [{
                "component": "calico-node",
                "serial": null,
                "not_after": null,
                "status": "quarantined",
                "quarantined_by": "a later calseg",
            }],
            "units": [],
            "errors": [],
            "attestation": {"kind": "tpm", "quote": "..."},
        });
        let answer = call(
            node.client()
                .expect("client")
                .post(format!("{}{}", node.base, calseg_api::paths::REPORT))
                .json(&report),
        )
        .await
        .expect("report");
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{which}: {answer:?}");
        // The inventory shows the status as sent, as drift.
        let listed = server.cli_ok(&["nodes", "list"]).expect("nodes list");
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("mixed-future ") && l.contains("calico-node: quarantined")),
            "{which}: {listed}"
        );
        // Never an error: the rollout counts a node by its revision and its errors (none here),
        // so the node is neither failed nor hidden.
        let status = server.rollout_status().expect("rollout status");
        assert_eq!(
            (status.approved, status.converged, status.failed),
            (1, 1, 0),
            "{which}: {status:#?}"
        );
    }
}
