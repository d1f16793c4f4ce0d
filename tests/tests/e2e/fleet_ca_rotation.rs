//! Issue 22: rotating the fleet CA (agents' and administrators' certificates, the server's TLS
//! certificate) on a real server with real agents in sandboxed hosts, whose stand-in
//! calico-node writes to etcd every second throughout. A fleet certificate's renewal restarts
//! nothing: the stand-in starts once (at install) and never fails, and the lease sampler sees
//! no more than the budget.
//!
//! Also: refusals (finish before begin or while a node or the administrator is on the old CA,
//! begin twice, pause), a restart in the overlap, a rollback in two steps, the old CA refused
//! after `--finish` (on a new connection and on one kept alive from before), enrollment with
//! the new pin, and an agent of the previous release moving at its due renewal.

use super::ca_rotation::{ca_status, copy_ca_files, first_install, policy, refused, wait_status};
use calseg_api::ca::{CaStatus, FleetRotationPhase};
use calseg_api::lease::LeaseInfo;
use calseg_api::paths;
use calseg_tests::agent_host::{AgentHost, describe};
use calseg_tests::api_client::{TestNode, call, get_json, https_client, key_and_csr};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const STATE: &str = "/var/lib/calseg/agent";

/// etcd and a server with Calico's cluster-wide objects made.
async fn fleet() -> (EtcdCluster, ServerProcess) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoints()), "")
        .await
        .expect("server");
    server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    (etcd, server)
}

/// Approved nodes still on the other CA, `None` outside a fleet rotation.
fn pending(status: &CaStatus) -> Option<Vec<String>> {
    status
        .fleet_rotation
        .as_ref()
        .map(|r| r.pending_nodes.clone())
}

/// The issuer line of `host`'s fleet certificate.
fn fleet_issuer(host: &AgentHost) -> String {
    host.host
        .exec_ok(&format!(
            "openssl x509 -noout -issuer -in {STATE}/fleet.pem"
        ))
        .expect("openssl")
}

/// How many CAs `host` trusts for the server.
fn trusted_cas(host: &AgentHost) -> usize {
    host.host
        .exec_ok(&format!("cat {STATE}/fleet-ca.pem"))
        .expect("fleet-ca.pem")
        .matches("BEGIN CERTIFICATE")
        .count()
}

/// The issuer line of the server's TLS certificate.
fn server_issuer(server: &ServerProcess) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-in"])
        .arg(server.state_dir().join("tls/server.pem"))
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits for `host`'s daemon to finish a pass that started after `after`; its outcome.
async fn pass_after(host: &AgentHost, after: time::OffsetDateTime) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = host
            .host
            .exec_ok(&format!("cat {STATE}/last-cycle.json"))
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
        let started = json["started_at"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        if started > after {
            return json["outcome"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{}: no pass after {after}\n{}",
            host.node,
            host.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `calseg-agent once` on `host`, expecting "nothing changed".
fn unchanged(host: &AgentHost) {
    let (code, out) = host.once().expect("once");
    assert_eq!(code, 0, "{}: {out}", host.node);
}

fn fleet_files(server: &ServerProcess) -> Vec<String> {
    ca_files(server, "fleet")
}

/// The names in `server`'s CA directory that start with `prefix`, sorted.
fn ca_files(server: &ServerProcess, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.state_dir().join("ca"))
        .expect("ca dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_ca_rotates_while_agents_run_without_a_failed_etcd_request() {
    let (_etcd, mut server) = fleet().await;
    let (a, b) = tokio::join!(
        AgentHost::boot("rot-f1", &server),
        AgentHost::boot("rot-f2", &server)
    );
    let hosts = [a.expect("sandbox"), b.expect("sandbox")];
    for host in &hosts {
        first_install(host, &server).await;
        host.start_daemon().expect("calseg-agent run");
    }
    let old_ca_pem = server.fleet_ca_pem();
    let old_issuer = fleet_issuer(&hosts[0]);
    // rot-f1's fleet credentials of before the rotation, on a connection kept alive.
    let old_cert = hosts[0]
        .host
        .exec_ok(&format!("cat {STATE}/fleet.pem"))
        .expect("cert");
    let old_key = hosts[0]
        .host
        .exec_ok(&format!("cat {STATE}/fleet.key"))
        .expect("key");
    let kept_alive = https_client(&old_ca_pem, Some((&old_cert, &old_key))).expect("client");
    let manifest_url = format!("{}{}", server.url(), paths::MANIFEST);
    let before = call(kept_alive.get(&manifest_url)).await.expect("manifest");
    assert_eq!(before.status, StatusCode::OK, "{before:?}");

    // The restart budget, as the server counts leases, sampled throughout.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let url = format!("{}{}", server.url(), paths::ADMIN_LEASES);
        let (admin_dir, ca_dir) = (
            server.dir().join("etc/admin"),
            server.state_dir().join("ca"),
        );
        // The admin files as they are now (re-read once `--finish` refuses the old ones).
        let connect = move || {
            let read = |path: std::path::PathBuf| std::fs::read_to_string(path).expect("file");
            let cert = read(admin_dir.join("admin.pem"));
            let key = read(admin_dir.join("admin-key.pem"));
            https_client(&read(ca_dir.join("fleet.pem")), Some((&cert, &key))).expect("client")
        };
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let (mut samples, mut peak, mut reconnects) = (0usize, 0usize, 0usize);
            let mut admin = connect();
            while sampling.load(Ordering::Relaxed) {
                match get_json::<Vec<LeaseInfo>>(&admin, &url).await {
                    Ok(live) => {
                        peak = peak.max(live.len());
                        samples += 1;
                    }
                    Err(error) => {
                        reconnects += 1;
                        assert!(reconnects <= 3, "{error:#}");
                        admin = connect();
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, peak)
        })
    };

    let begun = server
        .cli_ok(&["ca", "rotate", "fleet", "--begin"])
        .expect("begin");
    let status = ca_status(&server);
    let rotation = status.fleet_rotation.clone().expect("a fleet rotation");
    assert_eq!(rotation.phase, FleetRotationPhase::Overlap, "{status:#?}");
    assert_eq!(rotation.other.fingerprint, status.fleet.fingerprint);
    let new_fp = rotation.signing.fingerprint.clone();
    assert!(begun.contains(&new_fp), "{begun}");
    assert!(
        begun.contains("\n  1. re-issue every administrator certificate"),
        "the steps on lines of their own: {begun}"
    );
    assert_ne!(new_fp, server.fleet_ca_hash());

    // Every agent renews at once (the manifest names the new CA) and trusts both.
    wait_status(
        &server,
        Duration::from_secs(60),
        "every node renewed",
        |s| pending(s).is_some_and(|p| p.is_empty()),
    )
    .await;
    for host in &hosts {
        let issuer = fleet_issuer(host);
        assert!(
            issuer != old_issuer && issuer.contains("calseg fleet CA 2"),
            "{}: {issuer}",
            host.node
        );
        assert_eq!(trusted_cas(host), 2, "{}", host.node);
    }
    // Still served with the old CA's server certificate: the old pin still enrolls.
    assert_eq!(server_issuer(&server), {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(server.state_dir().join("ca/fleet.pem"))
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&out.stdout).replacen("subject", "issuer", 1)
    });

    // The administrator's certificate is on the old CA: --finish would lock it out.
    refused(
        &server,
        &["ca", "rotate", "fleet", "--finish"],
        &["administrator certificate comes from the fleet CA that --finish stops trusting"],
    );
    server
        .cli_ok(&["admin", "issue", "--lifetime", "1h"])
        .expect("admin issue from the new CA");
    let finished_at = time::OffsetDateTime::now_utc();
    let finished = server
        .cli_ok(&["ca", "rotate", "fleet", "--finish"])
        .expect("finish");
    assert!(finished.contains("fleet.retired-"), "{finished}");
    let done = ca_status(&server);
    assert_eq!(done.fleet.fingerprint, new_fp, "{done:#?}");
    assert!(done.fleet_rotation.is_none(), "{done:#?}");
    assert!(
        server_issuer(&server).contains("calseg fleet CA 2"),
        "the server's certificate follows: {}",
        server_issuer(&server)
    );
    let files = fleet_files(&server);
    assert!(
        files.iter().any(|f| f.starts_with("fleet.retired-"))
            && !files
                .iter()
                .any(|f| f.contains("next") || f.contains("abandoned")),
        "{files:?}"
    );

    // The old CA is refused: on the connection kept alive from before, and on a new one.
    let answer = call(kept_alive.get(&manifest_url)).await.expect("answer");
    assert_eq!(
        (answer.status, answer.kind()),
        (StatusCode::UNAUTHORIZED, "fleet_ca_not_trusted"),
        "{answer:?}"
    );
    let both = format!("{old_ca_pem}{}", server.fleet_ca_pem());
    let fresh = https_client(&both, Some((&old_cert, &old_key))).expect("client");
    let refused_handshake = fresh.get(&manifest_url).send().await;
    assert!(
        refused_handshake.is_err(),
        "a certificate of the retired CA was let in: {refused_handshake:?}"
    );

    // The agents go on with the new CA alone.
    for host in &hosts {
        assert_eq!(
            pass_after(host, finished_at).await,
            "unchanged",
            "{}",
            host.node
        );
    }
    // New enrollments take the new pin; the old one is refused, naming what the server holds.
    let late = AgentHost::boot("rot-f3", &server).await.expect("sandbox");
    let token = server.token_for("rot-f3", "10m").expect("token");
    let old_pin = late
        .agent(&format!(
            "enroll --ca-hash {} --token {token}",
            server.fleet_ca_hash()
        ))
        .expect("enroll");
    let says = describe(&old_pin);
    assert!(
        !old_pin.status.success() && says.contains(&new_fp),
        "{says}"
    );
    let enrolled = late
        .agent(&format!("enroll --ca-hash {new_fp} --token {token}"))
        .expect("enroll");
    assert!(enrolled.status.success(), "{}", describe(&enrolled));

    tokio::time::sleep(Duration::from_secs(2)).await;
    sampling.store(false, Ordering::Relaxed);
    let (samples, peak) = sampler.await.expect("sampler");
    assert!(samples >= 20, "only {samples} lease samples");
    assert!(peak <= 1, "{peak} live leases at once (budget 1)");
    for host in &hosts {
        host.assert_standin_ran_clean(1, "started at install, never restarted or failed")
            .await;
    }

    // After a restart the new CA stays in force and the agents keep working.
    let restarted_at = time::OffsetDateTime::now_utc();
    server.restart().await.expect("restart the server");
    assert_eq!(ca_status(&server).fleet.fingerprint, new_fp);
    for host in &hosts {
        assert_eq!(
            pass_after(host, restarted_at).await,
            "unchanged",
            "{}",
            host.node
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_rotation_survives_a_restart_refuses_early_steps_and_rolls_back_in_two_steps() {
    let (_etcd, mut server) = fleet().await;
    let host = AgentHost::boot("rot-back", &server).await.expect("sandbox");
    first_install(&host, &server).await;
    let old_fp = ca_status(&server).fleet.fingerprint;
    let old_issuer = fleet_issuer(&host);

    refused(
        &server,
        &["ca", "rotate", "fleet", "--finish"],
        &["no rotation of the fleet CA"],
    );
    server
        .cli_ok(&["ca", "rotate", "fleet", "--begin"])
        .expect("begin");
    let new_fp = ca_status(&server)
        .fleet_rotation
        .expect("rotation")
        .signing
        .fingerprint;
    refused(
        &server,
        &["ca", "rotate", "fleet", "--begin"],
        &["already under way"],
    );
    refused(
        &server,
        &["ca", "rotate", "fleet", "--pause"],
        &["no waves"],
    );
    // The node has not renewed: finish waits for it, naming it.
    refused(
        &server,
        &["ca", "rotate", "fleet", "--finish"],
        &[
            "rot-back",
            "still hold a fleet certificate from the other CA",
        ],
    );

    // A restart in the overlap resumes it from the CA directory.
    server.restart().await.expect("restart");
    let resumed = ca_status(&server).fleet_rotation.expect("still rotating");
    assert_eq!(
        (resumed.phase, resumed.signing.fingerprint.as_str()),
        (FleetRotationPhase::Overlap, new_fp.as_str())
    );
    assert_eq!(resumed.pending_nodes, ["rot-back"]);
    // The operator's view: waiting for the node (exit 0), then their step (exit 2).
    let shown = server.cli(&["ca", "status"]).expect("ca status");
    let text = describe(&shown);
    assert!(
        shown.status.code() == Some(0)
            && text.contains("rotation of the fleet CA: overlap")
            && text.contains(&format!("signing  {new_fp}"))
            && text.contains("1 node(s) still on the other CA: rot-back"),
        "{text}"
    );
    unchanged(&host);
    assert_ne!(fleet_issuer(&host), old_issuer, "renewed from the new CA");
    assert_eq!(pending(&ca_status(&server)), Some(vec![]));
    let shown = server.cli(&["ca", "status"]).expect("ca status");
    let text = describe(&shown);
    assert!(
        shown.status.code() == Some(2) && text.contains("ca rotate fleet --finish"),
        "{text}"
    );

    // An administrator certificate of the new CA, as an operator preparing --finish has.
    server
        .cli_ok(&["admin", "issue", "--lifetime", "1h"])
        .expect("admin issue from the new CA");

    // Rollback: the old CA signs again, both stay trusted until the node is back on it.
    server
        .cli_ok(&["ca", "rotate", "fleet", "--rollback"])
        .expect("rollback");
    let back = ca_status(&server).fleet_rotation.expect("rolling back");
    assert_eq!(back.phase, FleetRotationPhase::RollingBack);
    assert_eq!(back.signing.fingerprint, old_fp);
    assert_eq!(back.pending_nodes, ["rot-back"]);
    refused(
        &server,
        &["ca", "rotate", "fleet", "--rollback"],
        &["rot-back"],
    );
    refused(
        &server,
        &["ca", "rotate", "fleet", "--finish"],
        &["rolled back"],
    );
    unchanged(&host);
    assert_eq!(fleet_issuer(&host), old_issuer, "back on the old CA");
    // Dropping the new CA would lock out the administrator holding one of its certificates.
    refused(
        &server,
        &["ca", "rotate", "fleet", "--rollback"],
        &["the second --rollback stops trusting"],
    );
    server
        .cli_ok(&["admin", "issue", "--lifetime", "1h"])
        .expect("admin issue from the old CA again");
    server
        .cli_ok(&["ca", "rotate", "fleet", "--rollback"])
        .expect("drop the new CA");
    let after = ca_status(&server);
    assert!(after.fleet_rotation.is_none(), "{after:#?}");
    assert_eq!(after.fleet.fingerprint, old_fp);
    assert_eq!(fleet_files(&server), ["fleet-key.pem", "fleet.pem"]);
    unchanged(&host);
    // Every step is in the audit log.
    let audit = server.cli_ok(&["audit", "-o", "json"]).expect("audit");
    for step in ["begin", "rollback", "finish refused"] {
        assert!(audit.contains(step), "{step}: {audit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_the_previous_release_moves_to_the_new_fleet_ca_at_its_due_renewal() {
    let old = calseg_tests::previous_release::binaries()
        .await
        .unwrap_or_else(|e| panic!("the previous release: {e:#}"));
    let (_etcd, mut server) = fleet().await;
    // Fleet certificates that live 4 min: with not_before set 5 min back (clock skew), an agent
    // renews one about a minute after it was issued.
    server
        .set_fleet_cert_lifetime("4m")
        .await
        .expect("fleet certificate lifetime");
    let host = AgentHost::boot_with_binary("rot-old", &server, &old.agent)
        .await
        .expect("sandbox");
    first_install(&host, &server).await;
    let old_issuer = fleet_issuer(&host);
    server
        .cli_ok(&["ca", "rotate", "fleet", "--begin"])
        .expect("begin");
    // The old agent ignores the manifest's new field: it stays on the old CA until due.
    unchanged(&host);
    assert_eq!(fleet_issuer(&host), old_issuer);
    refused(
        &server,
        &["ca", "rotate", "fleet", "--finish"],
        &["rot-old"],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while fleet_issuer(&host) == old_issuer {
        assert!(Instant::now() < deadline, "{:#?}", ca_status(&server));
        tokio::time::sleep(Duration::from_secs(2)).await;
        unchanged(&host);
    }
    assert_eq!(trusted_cas(&host), 2);
    assert_eq!(pending(&ca_status(&server)), Some(vec![]));
    server
        .cli_ok(&["admin", "issue", "--lifetime", "1h"])
        .expect("admin issue");
    server
        .cli_ok(&["ca", "rotate", "fleet", "--finish"])
        .expect("finish once it renewed");
    // It trusts the new CA the renewal gave it: the server's new certificate is accepted.
    unchanged(&host);
    assert_eq!(host.standin_starts(), 1, "no restart for a fleet CA");
}

/// A fleet certificate renewed for `node` through `server` (POST /v1/fleet/renew): the new
/// certificate and its key.
async fn renew(node: &TestNode, server: &ServerProcess) -> (String, String) {
    let (key_pem, csr_pem) = key_and_csr(&node.name).expect("csr");
    let answer = call(
        node.client()
            .expect("client")
            .post(format!("{}{}", server.url(), paths::FLEET_RENEW))
            .json(&calseg_api::enroll::FleetRenewRequest { csr_pem }),
    )
    .await
    .expect("renew");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let cert = answer.body["cert_pem"].as_str().expect("cert").to_owned();
    (cert, key_pem)
}

/// Whether `server` answers `GET /v1/manifest` to a client trusting `ca_pem` and presenting
/// `cert` and `key` (any HTTP answer counts; a refused handshake does not).
async fn answers(server: &ServerProcess, ca_pem: &str, cert: &str, key: &str) -> bool {
    let client = https_client(ca_pem, Some((cert, key))).expect("client");
    client
        .get(format!("{}{}", server.url(), paths::MANIFEST))
        .send()
        .await
        .is_ok_and(|r| r.status() != StatusCode::UNAUTHORIZED)
}

/// Polls [`answers`] until it says `expected`, for at most 10 s.
async fn until_answers(
    server: &ServerProcess,
    (ca_pem, cert, key): (&str, &str, &str),
    expected: bool,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers(server, ca_pem, cert, key).await != expected {
        assert!(Instant::now() < deadline, "{what}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_given_the_files_of_a_step_taken_on_another_follows_while_it_runs() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let replicas =
        ServerProcess::start_replicas(&etcd, &policy(&etcd.endpoints()), "", &[None, None], "2s")
            .await
            .expect("replicas");
    let (r0, r1) = (&replicas[0], &replicas[1]);
    let old_ca = r0.fleet_ca_pem();
    let mut node = TestNode::new("rot-ha", &r0.url(), &old_ca).expect("node");
    let token = r0.token_for("rot-ha", "10m").expect("token");
    let enrolled = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(enrolled.status, StatusCode::OK, "{enrolled:?}");
    let first = (node.cert_pem.clone().expect("cert"), node.key_pem.clone());

    r0.cli_ok(&["ca", "rotate", "fleet", "--begin"])
        .expect("begin on r0");
    let (cert, key) = renew(&node, r0).await;
    let ca_dir = r0.state_dir().join("ca");
    let new_ca = std::fs::read_to_string(ca_dir.join("fleet.next.pem")).expect("new CA");
    let both = format!("{old_ca}{new_ca}");
    // r1 has not got the new CA: it refuses the renewed certificate, and takes it once the
    // files are copied, without a restart.
    assert!(!answers(r1, &both, &cert, &key).await, "r1 took it early");
    copy_ca_files(r0, r1, &["fleet.next.pem", "fleet.next-key.pem"]);
    until_answers(r1, (&both, &cert, &key), true, "r1 follows the new CA").await;
    assert!(
        answers(r1, &both, &first.0, &first.1).await,
        "the old CA still too"
    );

    // Finish on r0, then r1 is given fleet.pem and its key: it stops trusting the old CA and
    // re-issues its own server certificate from the new one.
    r0.cli_ok(&["admin", "issue", "--lifetime", "1h"])
        .expect("admin issue");
    r0.cli_ok(&["ca", "rotate", "fleet", "--finish"])
        .expect("finish on r0");
    assert!(answers(r0, &new_ca, &cert, &key).await);
    assert!(!answers(r0, &both, &first.0, &first.1).await);
    copy_ca_files(r0, r1, &["fleet.pem", "fleet-key.pem"]);
    until_answers(
        r1,
        (&both, &first.0, &first.1),
        false,
        "r1 refuses the old CA",
    )
    .await;
    // Trusting the new CA alone: r1's own certificate comes from it now.
    assert!(answers(r1, &new_ca, &cert, &key).await);
    let left = ca_files(r1, "fleet.next");
    assert!(left.is_empty(), "r1 completed the finish: {left:?}");
}
