//! Issue 22: rotating the etcd client CA in waves, on real etcd (three members, restarted one
//! at a time with the bundle) and real agents in sandboxed hosts whose stand-in calico-node
//! writes to etcd every second throughout. The stand-in exits at its first failed etcd request
//! and systemd starts it again, so its start count is the proof: one start at install, one
//! restart for the re-issued identity, none for a failure. A sampler of the server's lease list
//! shows the restart budget (1) is never exceeded.
//!
//! A second test covers refusals and waiting: begin twice, finish before etcd trusts the new
//! CA, an endpoint that never trusts it (the rotation waits and says which), a server restart
//! in the middle, and a rollback that drops the new CA.

use calseg_api::ca::{CaStatus, RotationPhase};
use calseg_api::lease::LeaseInfo;
use calseg_api::paths;
use calseg_tests::agent_host::{AgentHost, STANDIN_UNIT, describe};
use calseg_tests::api_client::{admin_client, get_json};
use calseg_tests::etcd::{EtcdCluster, EtcdOptions};
use calseg_tests::server::ServerProcess;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const REAL: [&str; 2] = ["rot-1", "rot-2"];

pub(crate) fn policy(endpoints: &[String]) -> String {
    let endpoints = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = [{endpoints}]
[identity]
lifetime = "2h"
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["{STANDIN_UNIT}"]
env_file = "/etc/calico/calico-node.env"
[[hosts]]
match = "rot-*"
components = ["calico-node"]
[rollout]
max_unavailable = 1
lease_ttl = "10s"
canary = 1
wave = "50%"
bake = "0s"
"#
    )
}

pub(crate) fn ca_status(server: &ServerProcess) -> CaStatus {
    let out = server
        .cli(&["ca", "status", "-o", "json"])
        .expect("ca status");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

/// Polls `ca status` until `done` holds, for at most `within`.
pub(crate) async fn wait_status(
    server: &ServerProcess,
    within: Duration,
    what: &str,
    done: impl Fn(&CaStatus) -> bool,
) -> CaStatus {
    let deadline = Instant::now() + within;
    loop {
        let status = ca_status(server);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {status:#?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn phase(status: &CaStatus) -> Option<RotationPhase> {
    status.rotation.as_ref().map(|r| r.phase)
}

/// Enrolls `host` and runs `calseg-agent once` until its identity is installed (until the
/// reconciler has made its etcd user, the agent's etcd check fails and it retries).
pub(crate) async fn first_install(host: &AgentHost, server: &ServerProcess) {
    host.enroll(server).expect("enroll");
    host.count_standin_starts().await.expect("drop-in");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = host.once().expect("once");
        if code == 2 {
            return;
        }
        assert!(Instant::now() < deadline, "{}: {out}", host.node);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `calseg-server ARGS` expecting a refusal whose message says each of `says`.
pub(crate) fn refused(server: &ServerProcess, args: &[&str], says: &[&str]) {
    let out = server.cli(args).expect("calseg-server");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && says.iter().all(|s| stderr.contains(s)),
        "{args:?}: {}",
        describe(&out)
    );
}

/// The issuer line of `host`'s calico-node certificate.
fn issuer(host: &AgentHost) -> String {
    host.host
        .exec_ok("openssl x509 -noout -issuer -in /etc/calico/certs/calico-node/cert.pem")
        .expect("openssl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_etcd_client_ca_rotates_in_waves_without_a_failed_etcd_request() {
    let mut etcd = EtcdCluster::start_with(EtcdOptions {
        members: 3,
        ..EtcdOptions::default()
    })
    .await
    .expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoints()), "")
        .await
        .expect("server");
    server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    let admin = admin_client(&server).expect("admin client");
    let (a, b) = tokio::join!(
        AgentHost::boot(REAL[0], &server),
        AgentHost::boot(REAL[1], &server)
    );
    let hosts = [a.expect("sandbox"), b.expect("sandbox")];
    for host in &hosts {
        first_install(host, &server).await;
        assert_eq!(host.standin_starts(), 1, "{}", host.node);
        // As if installed by an agent that did not record issuers yet (the fleet's state when
        // it first upgrades): a node must still wait for its wave.
        host.host
            .exec_ok(
                "python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); \
                 [v.pop(\"issuer\", None) for v in d.values()]; json.dump(d, open(p, \"w\"))' \
                 /var/lib/calseg/agent/installed.json",
            )
            .expect("strip issuers");
        host.start_daemon().expect("calseg-agent run");
    }
    let old_issuer = issuer(&hosts[0]);

    // The restart budget, as the server counts leases, sampled throughout.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let url = format!("{}{}", server.url(), paths::ADMIN_LEASES);
        let (admin, sampling) = (admin.clone(), Arc::clone(&sampling));
        tokio::spawn(async move {
            let (mut samples, mut peak) = (0usize, 0usize);
            while sampling.load(Ordering::Relaxed) {
                let live: Vec<LeaseInfo> = get_json(&admin, &url).await.expect("leases");
                peak = peak.max(live.len());
                samples += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, peak)
        })
    };

    let begun = server
        .cli_ok(&["ca", "rotate", "etcd-client", "--begin"])
        .expect("begin");
    assert!(begun.contains("etcd-client-bundle.pem"), "{begun}");
    let trusting = wait_status(&server, Duration::from_secs(20), "probed", |s| {
        s.rotation.as_ref().is_some_and(|r| r.probes.len() == 3)
    })
    .await;
    let rotation = trusting.rotation.clone().unwrap();
    assert_eq!(rotation.phase, RotationPhase::Trusting, "{trusting:#?}");
    assert!(rotation.probes.iter().all(|p| !p.trusted), "{trusting:#?}");
    // Nothing is issued from the new CA while etcd does not trust it.
    assert_eq!(issuer(&hosts[0]), old_issuer);

    // The operator's procedure: etcd trusts old and new, members restarted one at a time.
    let ca_dir = server.state_dir().join("ca");
    let new_ca = std::fs::read_to_string(ca_dir.join("etcd-client.next.pem")).expect("new CA");
    let bundle = std::fs::read_to_string(ca_dir.join("etcd-client-bundle.pem")).expect("bundle");
    assert!(
        bundle.contains(new_ca.trim()),
        "the bundle holds the new CA"
    );
    etcd.set_trusted_cas(std::slice::from_ref(&new_ca))
        .expect("bundle");
    for member in 0..3 {
        etcd.restart_member(member).await.expect("restart member");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Every endpoint trusts the new CA: identities are re-issued in waves.
    let reissued = wait_status(&server, Duration::from_secs(120), "re-issued", |s| {
        phase(s) == Some(RotationPhase::Reissued)
    })
    .await;
    let rotation = reissued.rotation.clone().unwrap();
    assert!(rotation.probes.iter().all(|p| p.trusted), "{reissued:#?}");
    let waves = rotation.waves.expect("waves");
    assert_eq!(
        (waves.opened_waves, waves.total_waves),
        (2, 2),
        "{waves:#?}"
    );
    let finished = server
        .cli_ok(&["ca", "rotate", "etcd-client", "--finish"])
        .expect("finish");
    assert!(finished.contains("retired"), "{finished}");
    // calseg's own etcd certificate came from the old CA (the harness's): re-issued.
    assert!(
        finished.contains("re-issued from the new one"),
        "{finished}"
    );
    let own = server.dir().join("etc/etcd/calseg.pem");
    let own_issuer = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-in"])
        .arg(&own)
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&own_issuer.stdout).contains("calseg etcd client CA"),
        "{}",
        describe(&own_issuer)
    );
    let done = ca_status(&server);
    assert_eq!(phase(&done), Some(RotationPhase::Finished), "{done:#?}");
    assert_eq!(done.etcd_client.fingerprint, rotation.new_fingerprint);

    // A moment more: a late restart or failure would show now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.store(false, Ordering::Relaxed);
    let (samples, peak) = sampler.await.expect("sampler");
    assert!(samples >= 20, "only {samples} lease samples");
    assert!(
        peak <= 1,
        "the server listed {peak} live leases at once (budget 1)"
    );
    for host in &hosts {
        host.assert_standin_ran_clean(
            2,
            "one start at install, one restart for the new CA, no failure",
        )
        .await;
        let now = issuer(host);
        assert_ne!(now, old_issuer, "{}", host.node);
        assert!(
            now.contains("calseg etcd client CA"),
            "{}: {now}",
            host.node
        );
    }

    // The new CA stays in force across a restart of the server.
    let mut server = server;
    server.restart().await.expect("restart the server");
    let after = ca_status(&server);
    assert_eq!(after.etcd_client.fingerprint, rotation.new_fingerprint);
    assert_eq!(phase(&after), Some(RotationPhase::Finished));
    // ... and calseg manages etcd with its re-issued identity.
    server
        .wait_rbac_applied()
        .await
        .expect("RBAC applied after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_waits_for_an_untrusting_endpoint_refuses_early_steps_and_rolls_back() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let mut server = ServerProcess::start(&etcd, &policy(&etcd.endpoints()), "")
        .await
        .expect("server");
    refused(
        &server,
        &["ca", "rotate", "etcd-client", "--finish"],
        &["no rotation"],
    );
    server
        .cli_ok(&["ca", "rotate", "etcd-client", "--begin"])
        .expect("begin");
    refused(
        &server,
        &["ca", "rotate", "etcd-client", "--begin"],
        &["already in progress"],
    );
    let ca_dir = server.state_dir().join("ca");
    let new_key = std::fs::read(ca_dir.join("etcd-client.next-key.pem")).expect("new key");

    // etcd never trusts it: the rotation waits and names the endpoint, even across a restart.
    let waiting = wait_status(&server, Duration::from_secs(20), "probed", |s| {
        s.rotation.as_ref().is_some_and(|r| !r.probes.is_empty())
    })
    .await;
    let probe = &waiting.rotation.as_ref().unwrap().probes[0];
    assert_eq!(probe.endpoint, etcd.endpoint(0));
    assert!(
        !probe.trusted && probe.detail.contains("not accepted"),
        "{probe:?}"
    );
    let text = server.cli_ok(&["ca", "status"]).expect("ca status");
    assert!(
        text.contains("REFUSES") && text.contains(&etcd.endpoint(0)),
        "{text}"
    );
    server.restart().await.expect("restart");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let still = ca_status(&server);
    let rotation = still.rotation.clone().unwrap();
    assert_eq!(rotation.phase, RotationPhase::Trusting, "{still:#?}");
    assert!(rotation.waves.is_none(), "waves began without trust");
    assert_eq!(
        std::fs::read(ca_dir.join("etcd-client.next-key.pem")).expect("new key"),
        new_key,
        "the new key changed"
    );
    refused(
        &server,
        &["ca", "rotate", "etcd-client", "--finish"],
        &["not every etcd endpoint trusts", &etcd.endpoint(0)],
    );

    // Rolled back: the new CA is gone, the bundle holds the old one, and a new rotation may
    // begin.
    server
        .cli_ok(&["ca", "rotate", "etcd-client", "--rollback"])
        .expect("rollback");
    let rolled = ca_status(&server);
    assert_eq!(
        phase(&rolled),
        Some(RotationPhase::RolledBack),
        "{rolled:#?}"
    );
    assert!(!ca_dir.join("etcd-client.next-key.pem").exists());
    let bundle = std::fs::read_to_string(ca_dir.join("etcd-client-bundle.pem")).expect("bundle");
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(rolled.etcd_client.fingerprint, rotation.old_fingerprint);
    server
        .cli_ok(&["ca", "rotate", "etcd-client", "--begin"])
        .expect("a new rotation");
}

/// Copies the new CA's files of a rotation from one replica's CA directory to another's, as
/// the operator does (`begin` names them).
/// Copies the CA files `names` from `from`'s CA directory to `to`'s, as an operator gives a
/// replica the files of a step taken on another.
pub(crate) fn copy_ca_files(from: &ServerProcess, to: &ServerProcess, names: &[&str]) {
    for name in names {
        std::fs::copy(
            from.state_dir().join("ca").join(name),
            to.state_dir().join("ca").join(name),
        )
        .unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_goes_on_after_its_replica_dies_and_every_replica_catches_up() {
    let mut etcd = EtcdCluster::start().await.expect("etcd");
    let mut replicas =
        ServerProcess::start_replicas(&etcd, &policy(&etcd.endpoints()), "", &[None, None], "2s")
            .await
            .expect("replicas");
    replicas[0]
        .cli_ok(&["ca", "rotate", "etcd-client", "--begin"])
        .expect("begin on r0");
    // r1 follows the store: it sees the rotation and says it lacks the new CA's files.
    wait_status(&replicas[1], Duration::from_secs(20), "r1 sees it", |s| {
        s.rotation.as_ref().is_some_and(|r| !r.new_ca_here)
    })
    .await;
    copy_ca_files(
        &replicas[0],
        &replicas[1],
        &["etcd-client.next.pem", "etcd-client.next-key.pem"],
    );
    wait_status(&replicas[1], Duration::from_secs(20), "r1 loads it", |s| {
        s.rotation.as_ref().is_some_and(|r| r.new_ca_here)
    })
    .await;

    // The replica that began it dies; etcd comes to trust the new CA; r1 carries on.
    replicas[0].kill_hard();
    let new_ca = std::fs::read_to_string(replicas[1].state_dir().join("ca/etcd-client.next.pem"))
        .expect("new CA");
    etcd.set_trusted_cas(&[new_ca]).expect("trust");
    etcd.restart_member(0).await.expect("restart etcd");
    let reissued = wait_status(&replicas[1], Duration::from_secs(60), "reissued", |s| {
        phase(s) == Some(RotationPhase::Reissued)
    })
    .await;
    let new_fingerprint = reissued.rotation.unwrap().new_fingerprint;
    replicas[1]
        .cli_ok(&["ca", "rotate", "etcd-client", "--finish"])
        .expect("finish on r1");
    assert_eq!(
        ca_status(&replicas[1]).etcd_client.fingerprint,
        new_fingerprint
    );

    // r0 comes back with the old CA in force on its disk: it completes the finish itself.
    replicas[0].restart().await.expect("r0 back");
    let caught_up = wait_status(
        &replicas[0],
        Duration::from_secs(20),
        "r0 catches up",
        |s| s.etcd_client.fingerprint == new_fingerprint,
    )
    .await;
    assert_eq!(phase(&caught_up), Some(RotationPhase::Finished));
    let ca_dir = replicas[0].state_dir().join("ca");
    assert!(ca_dir.join("etcd-client.active.pem").exists());
    assert!(!ca_dir.join("etcd-client.next-key.pem").exists());
    assert!(
        !ca_dir.join("etcd-client-key.pem").exists(),
        "the old key is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_rotation_sends_nodes_back_to_the_old_ca_before_dropping_the_new_one() {
    let mut etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoints()), "")
        .await
        .expect("server");
    server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    let host = AgentHost::boot(REAL[0], &server).await.expect("sandbox");
    first_install(&host, &server).await;
    host.start_daemon().expect("calseg-agent run");
    let old_issuer = issuer(&host);

    server
        .cli_ok(&["ca", "rotate", "etcd-client", "--begin"])
        .expect("begin");
    let new_ca = std::fs::read_to_string(server.state_dir().join("ca/etcd-client.next.pem"))
        .expect("new CA");
    etcd.set_trusted_cas(&[new_ca]).expect("trust");
    etcd.restart_member(0).await.expect("restart etcd");
    wait_status(&server, Duration::from_secs(60), "re-issued", |s| {
        phase(s) == Some(RotationPhase::Reissued)
    })
    .await;
    assert_ne!(issuer(&host), old_issuer, "re-issued from the new CA");
    // `ca status` asks for the operator now (exit 2): finish or roll back.
    let waiting = server.cli(&["ca", "status"]).expect("ca status");
    assert_eq!(waiting.status.code(), Some(2), "{}", describe(&waiting));

    // Roll back: first every node returns to the old CA...
    let first = server
        .cli_ok(&["ca", "rotate", "etcd-client", "--rollback"])
        .expect("rollback");
    assert!(first.contains("again"), "{first}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while issuer(&host) != old_issuer {
        assert!(
            Instant::now() < deadline,
            "not back on the old CA\n{}",
            host.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ... and once none depends on the new CA (the node has reported it), it is dropped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = server
            .cli(&["ca", "rotate", "etcd-client", "--rollback"])
            .expect("rollback again");
        if out.status.success() {
            break;
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("still depend on the new CA"),
            "{}",
            describe(&out)
        );
        assert!(Instant::now() < deadline, "{}", describe(&out));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rolled = ca_status(&server);
    assert_eq!(
        phase(&rolled),
        Some(RotationPhase::RolledBack),
        "{rolled:#?}"
    );
    assert!(
        !server
            .state_dir()
            .join("ca/etcd-client.next-key.pem")
            .exists()
    );
    host.assert_standin_ran_clean(3, "install, new CA, old CA again: none for a failure")
        .await;
}

/// docs/compatibility.md: an agent of the previous release ignores the manifest's issuer, so it
/// keeps its old-CA certificate through the waves; `--finish` waits for it and names it, and
/// its next renewal (here `calseg-agent renew`) brings a certificate of the new CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_the_previous_release_moves_to_the_new_ca_at_its_renewal() {
    let old = calseg_tests::previous_release::binaries()
        .await
        .unwrap_or_else(|e| panic!("the previous release: {e:#}"));
    let mut etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoints()), "")
        .await
        .expect("server");
    server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    let host = AgentHost::boot_with_binary("rot-old", &server, &old.agent)
        .await
        .expect("sandbox");
    first_install(&host, &server).await;
    let old_issuer = issuer(&host);

    server
        .cli_ok(&["ca", "rotate", "etcd-client", "--begin"])
        .expect("begin");
    let new_ca = std::fs::read_to_string(server.state_dir().join("ca/etcd-client.next.pem"))
        .expect("new CA");
    etcd.set_trusted_cas(&[new_ca]).expect("trust");
    etcd.restart_member(0).await.expect("restart etcd");
    // The old agent takes its manifests (it reports their revisions) but re-issues nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        host.once().expect("once");
        if phase(&ca_status(&server)) == Some(RotationPhase::Reissued) {
            break;
        }
        assert!(Instant::now() < deadline, "{:#?}", ca_status(&server));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        issuer(&host),
        old_issuer,
        "the old agent ignores the issuer"
    );
    refused(
        &server,
        &["ca", "rotate", "etcd-client", "--finish"],
        &["still depend on the old CA", "rot-old/calico-node"],
    );

    let renewed = host.agent("renew").expect("renew");
    // 2: something changed (the exit table both binaries share).
    assert_eq!(renewed.status.code(), Some(2), "{}", describe(&renewed));
    assert_ne!(issuer(&host), old_issuer, "renewed from the new CA");
    server
        .cli_ok(&["ca", "rotate", "etcd-client", "--finish"])
        .expect("finish once it renewed");
    assert_eq!(host.standin_starts(), 2, "install and renewal only");
}
