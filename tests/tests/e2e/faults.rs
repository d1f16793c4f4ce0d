//! Issue 10 (hardening) end to end: faults injected into real parts. A full file system under
//! the agent's install, an agent clock running behind the server's, an expired fleet
//! certificate, a Calico unit that never becomes active, and the server SIGKILLed while it signs.

use calseg_tests::agent_host::{AgentHost, AgentWorld, STANDIN_UNIT, describe, standin_policy};
use calseg_tests::api_client::TestNode;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const IDENTITY_DIR: &str = "/etc/calico/certs/calico-node";

struct Setup {
    etcd: EtcdCluster,
    server: ServerProcess,
    agent: AgentHost,
}

/// etcd, a server whose policy gives `node` calico-node, and `node`'s sandbox (not enrolled).
async fn boot(node: &str) -> Setup {
    let hosts = format!("names = [\"{node}\", \"other\"]");
    let AgentWorld {
        etcd,
        server,
        agent,
    } = AgentWorld::start(node, |endpoint| standin_policy(endpoint, &hosts))
        .await
        .expect("etcd, server and sandbox");
    Setup {
        etcd,
        server,
        agent,
    }
}

impl Setup {
    async fn unit(&self) -> calseg_agent::systemd::UnitStatus {
        self.agent
            .host
            .unit_status(STANDIN_UNIT)
            .await
            .expect("unit status")
    }

    /// `calseg-agent status --json` and the server's `nodes list --json`, lower-cased.
    fn reports(&self) -> (String, String) {
        let status = self.agent.agent("status --json").expect("status");
        let nodes = self
            .server
            .cli_ok(&["nodes", "list", "--json"])
            .expect("nodes list");
        (
            String::from_utf8_lossy(&status.stdout).to_lowercase(),
            nodes.to_lowercase(),
        )
    }

    /// Waits until the stand-in has written this node's felix status key with the installed
    /// identity (read back as etcd root).
    async fn standin_wrote(&self) -> bool {
        let key = format!("/calico/felix/v1/host/{}/status", self.agent.node);
        for _ in 0..50 {
            let mut root = self.etcd.root_client().await.expect("root");
            let response = root.get(key.as_str(), None).await.expect("get");
            if response
                .kvs()
                .first()
                .is_some_and(|kv| kv.value_str().unwrap_or_default().starts_with("alive-"))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// Prints MATCH when the certificate and key of the identity in `dir` hold the same public key.
fn pair_check(dir: &str) -> String {
    format!(
        "a=$(openssl x509 -noout -pubkey -in {dir}/cert.pem | sha256sum); \
         b=$(openssl pkey -pubout -in {dir}/key.pem | sha256sum); \
         [ \"$a\" = \"$b\" ] && echo MATCH || echo MISMATCH"
    )
}

#[tokio::test]
async fn a_full_disk_during_install_keeps_the_old_identity_and_the_unit_and_is_reported() {
    let s = boot("fault-disk").await;
    s.agent.enroll(&s.server).expect("enroll");
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "the first cycle must converge:\n{out}");
    let before = s.unit().await;
    assert_eq!(before.active_state, "active", "{before:?}");
    let host = &s.agent.host;
    let sums =
        format!("sha256sum {IDENTITY_DIR}/cert.pem {IDENTITY_DIR}/key.pem {IDENTITY_DIR}/ca.pem");
    let old = host.exec_ok(&sums).expect("sums");

    // A 64 KiB tmpfs holding a copy of the identity directory (bind-mounted over it) and a
    // filler file that takes every page left. The filler sits outside the bind mount, so the
    // agent cannot clean it up.
    host.exec_ok(&format!(
        "mkdir -p /run/tiny && mount -t tmpfs -o size=64k tmpfs /run/tiny \
         && cp -a {IDENTITY_DIR} /run/tiny/id \
         && mount --bind /run/tiny/id {IDENTITY_DIR} \
         && {{ dd if=/dev/zero of=/run/tiny/filler bs=1k 2>/dev/null; true; }}"
    ))
    .expect("fill a tiny file system");
    let free = host
        .exec_ok(&format!(
            "df --output=avail -B1 {IDENTITY_DIR} | tail -1; ls -A {IDENTITY_DIR}"
        ))
        .expect("df");
    assert!(
        free.trim_start().starts_with('0'),
        "the file system under {IDENTITY_DIR} is not full: {free}"
    );
    assert_eq!(host.exec_ok(&sums).expect("sums"), old, "the copy differs");

    // Forget what is installed: the cycle issues and installs a new identity.
    host.exec_ok("rm /var/lib/calseg/agent/installed.json")
        .expect("rm");
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(
        code, 1,
        "an install on a full disk must fail the cycle:\n{out}"
    );
    assert!(
        out.to_lowercase().contains("no space left"),
        "the error does not say the disk is full:\n{out}"
    );
    assert_eq!(
        host.exec_ok(&sums).expect("sums"),
        old,
        "the old identity changed:\n{out}"
    );
    assert_eq!(
        host.exec_ok(&pair_check(IDENTITY_DIR))
            .expect("pair")
            .trim(),
        "MATCH",
        "{out}"
    );
    let after = s.unit().await;
    assert_eq!(
        (after.active_state.as_str(), after.main_pid),
        ("active", before.main_pid),
        "the unit was restarted for an identity that was never installed:\n{out}"
    );
    let (status, nodes) = s.reports();
    assert!(status.contains("no space left"), "agent status: {status}");
    assert!(
        nodes.contains("no space left"),
        "the server did not get the failure: {nodes}"
    );
}

#[tokio::test]
async fn an_agent_whose_clock_runs_two_minutes_behind_converges_and_its_certificate_works() {
    calseg_tests::prereq::require_command("faketime", "faketime");
    let s = boot("fault-skew").await;
    let host = &s.agent.host;
    let agent = calseg_tests::bins::path("calseg-agent");
    // The skew is real inside the sandbox, or the test proves nothing.
    let clocks = host
        .exec_ok("echo $(date +%s) $(faketime -f -120s date +%s)")
        .expect("clocks");
    let times: Vec<i64> = clocks
        .split_whitespace()
        .map(|t| t.parse().expect("seconds"))
        .collect();
    assert!(
        (115..=125).contains(&(times[0] - times[1])),
        "faketime does not skew the clock by 120 s here: {clocks}"
    );

    let token = s.server.token_for("fault-skew", "10m").expect("token");
    let enroll = host
        .exec(&format!(
            "faketime -f -120s {} enroll --ca-hash {} --token {token}",
            agent.display(),
            s.server.fleet_ca_hash()
        ))
        .expect("enroll");
    assert!(
        enroll.status.success(),
        "enrollment with a clock 2 min behind: {}",
        describe(&enroll)
    );
    let once = format!("faketime -f -120s {} once", agent.display());
    let output = host.exec(&once).expect("once");
    assert_eq!(
        output.status.code(),
        Some(2),
        "a clock 2 min behind must still converge: {}",
        describe(&output)
    );
    assert_eq!(s.unit().await.active_state, "active");
    assert!(
        s.standin_wrote().await,
        "the stand-in never wrote to etcd with the identity signed for a skewed agent"
    );
    // The certificate was already valid on the agent's clock: backdated by more than 120 s.
    let margin = host
        .exec_ok(&format!(
            "echo $(( $(date +%s) - $(date -d \"$(openssl x509 -noout -startdate -in {IDENTITY_DIR}/cert.pem | cut -d= -f2)\" +%s) ))"
        ))
        .expect("notBefore");
    let margin: i64 = margin.trim().parse().expect("seconds");
    assert!(
        margin > 120,
        "notBefore is only {margin} s in the past; a clock 2 min behind sees a future certificate"
    );
    // Nothing to do on the next skewed cycle: the agent does not take the skew for a reason to
    // renew or reinstall.
    let output = host.exec(&once).expect("once");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}

#[tokio::test]
async fn an_expired_fleet_certificate_is_refused_everywhere_and_a_new_token_re_enrolls() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let mut server = ServerProcess::start(
        &etcd,
        &standin_policy(&etcd.endpoint(0), "names = [\"fault-expiry\"]"),
        "",
    )
    .await
    .expect("server");
    // Fleet certificates that live 8 s.
    server
        .set_fleet_cert_lifetime("8s")
        .await
        .expect("fleet certificate lifetime");
    let fleet_ca = server.fleet_ca_pem();
    let mut node = TestNode::new("fault-expiry", &server.url(), &fleet_ca).expect("node");
    let token = server.token_for("fault-expiry", "10m").expect("token");
    let enrolled_at = Instant::now();
    let answer = node.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let report = calseg_api::report::Report {
        revision: "0".into(),
        identities: vec![],
        units: vec![],
        errors: vec![],
    };

    // While valid, every mTLS route answers.
    let manifest = node.manifest(None).await.expect("manifest");
    assert_eq!(manifest.status, StatusCode::OK, "{manifest:?}");
    let (signed, _) = node
        .sign("calico-node", "calico-node.fault-expiry")
        .await
        .expect("sign");
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let reported = node.report(&report).await.expect("report");
    assert!(reported.status.is_success(), "{reported:?}");
    // A fleet certificate is no etcd identity, even while valid: etcd trusts only the etcd
    // client CA.
    let fleet = calseg_tests::pki::KeyedCert {
        cert_pem: node.cert_pem.clone().expect("fleet certificate"),
        key_pem: node.key_pem.clone(),
    };
    let in_etcd = match etcd.client_as(&fleet).await {
        Ok(mut client) => client
            .get("/calico/", None)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(in_etcd.is_err(), "etcd accepted a fleet certificate");

    tokio::time::sleep(Duration::from_secs(9).saturating_sub(enrolled_at.elapsed())).await;
    // After expiry: a TLS handshake error or 401 on every route, never an answer.
    let refused =
        |what: &str, result: anyhow::Result<calseg_tests::api_client::Answer>| match result {
            Err(_) => {}
            Ok(answer) => assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{what} with an expired fleet certificate: {answer:?}"
            ),
        };
    refused("manifest", node.manifest(None).await);
    refused(
        "sign",
        node.sign("calico-node", "calico-node.fault-expiry")
            .await
            .map(|(answer, _)| answer),
    );
    refused("report", node.report(&report).await);

    // A new token re-enrolls the node with a new key; the new certificate works.
    let mut again = TestNode::new("fault-expiry", &server.url(), &fleet_ca).expect("node");
    let token = server.token_for("fault-expiry", "10m").expect("token");
    let answer = again.enroll(Some(&token)).await.expect("enroll");
    assert_eq!(answer.status, StatusCode::OK, "re-enrollment: {answer:?}");
    let manifest = again.manifest(None).await.expect("manifest");
    assert_eq!(manifest.status, StatusCode::OK, "{manifest:?}");
}

const NEVER_ACTIVE: &str = "[Unit]
Description=calico-node stand-in that never becomes active (calseg tests)
[Service]
ExecStart=/bin/sh -c 'echo start >> /run/never-active-starts; echo broken on purpose >&2; exit 1'
";

#[tokio::test]
async fn a_unit_that_never_becomes_active_bounds_the_cycle_rolls_back_and_is_reported_each_time() {
    let s = boot("fault-unit").await;
    let host = &s.agent.host;
    host.install_unit(STANDIN_UNIT, NEVER_ACTIVE)
        .await
        .expect("unit");
    host.write_file(
        "/etc/calseg/agent.toml",
        &format!(
            "server = \"{}\"\nnode = \"fault-unit\"\nstate_dir = \"/var/lib/calseg/agent\"\nrestart_timeout = \"4s\"\ninterval = \"10s\"\n",
            s.server.url()
        ),
        0o644,
    )
    .expect("agent.toml");
    s.agent.enroll(&s.server).expect("enroll");
    let agent = calseg_tests::bins::path("calseg-agent");
    let starts = || -> usize {
        host.exec_ok("cat /run/never-active-starts 2>/dev/null || true")
            .expect("starts")
            .lines()
            .count()
    };

    let mut last_seen = 0;
    for cycle in 1..=2 {
        // The store keeps whole seconds: a report in a later second shows as a later last_seen.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = starts();
        // A hang is a failure: the cycle is bounded by restart_timeout (4 s) per restart.
        let output = host
            .exec(&format!("timeout 60 {} once", agent.display()))
            .expect("once");
        let out = describe(&output);
        assert_ne!(
            output.status.code(),
            Some(124),
            "cycle {cycle} hung:\n{out}"
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "cycle {cycle}: a unit that never becomes active fails the cycle:\n{out}"
        );
        assert!(
            out.contains(STANDIN_UNIT) && out.contains("failed"),
            "cycle {cycle}: the error does not name the failed unit:\n{out}"
        );
        let started = starts() - before;
        assert!(
            (1..=2).contains(&started),
            "cycle {cycle} started the unit {started} times (the restart, and one more after the rollback at most):\n{out}"
        );
        let active = host
            .exec("systemctl is-active calico-node.service")
            .expect("is-active");
        assert_eq!(
            String::from_utf8_lossy(&active.stdout).trim(),
            "failed",
            "cycle {cycle}"
        );
        let (status, nodes) = s.reports();
        assert!(
            status.contains("calico-node.service") && status.contains("failed"),
            "cycle {cycle}: agent status: {status}"
        );
        assert!(
            nodes.contains("calico-node.service") && nodes.contains("failed"),
            "cycle {cycle}: the server did not get the report: {nodes}"
        );
        let listed: serde_json::Value = serde_json::from_str(&nodes).expect("nodes json");
        let seen = listed[0]["last_seen"].as_i64().expect("last_seen");
        assert!(
            seen > last_seen,
            "cycle {cycle} did not report (last_seen {seen}): {nodes}"
        );
        last_seen = seen;
    }
    // Nothing keeps restarting it once the agent is done.
    let settled = starts();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(starts(), settled, "the unit is still being restarted");
}

/// Every `serial <hex>` of an issuance in the audit log, in order.
fn audited_serials(audit_json: &str) -> Vec<String> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(audit_json).expect("audit --json is JSON");
    entries
        .iter()
        .filter(|e| {
            e["outcome"]
                .as_str()
                .is_some_and(|o| o.eq_ignore_ascii_case("ok"))
        })
        .filter_map(|e| e["detail"].as_str()?.strip_prefix("serial "))
        .map(|s| s.trim().to_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_signing_loses_no_issued_serial_and_signs_again() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let mut server = ServerProcess::start(
        &etcd,
        &standin_policy(&etcd.endpoint(0), "match = \"kill-*\""),
        "auto_approve = [\"kill-*\"]",
    )
    .await
    .expect("server");
    let fleet_ca = server.fleet_ca_pem();
    let mut nodes = Vec::new();
    for i in 0..20 {
        let mut node = TestNode::new(&format!("kill-{i}"), &server.url(), &fleet_ca).expect("node");
        let answer = node.enroll(None).await.expect("enroll");
        assert_eq!(answer.body["status"], "enrolled", "{answer:?}");
        nodes.push(node);
    }

    // 20 nodes sign in a loop until the server goes away; 40 signed, then SIGKILL.
    const PER_NODE: usize = 30;
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for node in nodes {
        let ok = ok.clone();
        tasks.push(tokio::spawn(async move {
            let cn = format!("calico-node.{}", node.name);
            let mut serials = Vec::new();
            let mut failed = false;
            for _ in 0..PER_NODE {
                match node.sign("calico-node", &cn).await {
                    Ok((answer, _)) if answer.status == StatusCode::OK => {
                        let serial = answer.body["serial"].as_str().expect("serial");
                        serials.push(serial.to_lowercase());
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((answer, _)) => panic!("{} refused before the kill: {answer:?}", node.name),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            (node, serials, failed)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok.load(Ordering::SeqCst) < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = ok.load(Ordering::SeqCst);
    server.kill_hard().expect("the server was running");
    let mut returned = Vec::new();
    let mut interrupted = 0;
    let mut survivors = Vec::new();
    for task in tasks {
        let (node, serials, failed) = task.await.expect("signing task");
        returned.extend(serials);
        interrupted += usize::from(failed);
        survivors.push(node);
    }
    assert!(
        interrupted > 0 && returned.len() < 20 * PER_NODE,
        "the kill (after {killed_at} signings) interrupted nothing: {} signed",
        returned.len()
    );
    let unique: HashSet<&String> = returned.iter().collect();
    assert_eq!(
        unique.len(),
        returned.len(),
        "a serial was handed out twice"
    );

    server.restart().await.expect("restart after SIGKILL");
    let audit = server
        .cli_ok(&["audit", "--json", "--limit", "10000"])
        .expect("audit after the crash");
    let audited = audited_serials(&audit);
    let audited_set: BTreeSet<&String> = audited.iter().collect();
    assert_eq!(
        audited_set.len(),
        audited.len(),
        "a serial appears twice in the audit log"
    );
    let lost: Vec<&String> = returned
        .iter()
        .filter(|s| !audited_set.contains(s))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} serials returned with 200 are not in the store after the crash: {lost:?}",
        lost.len(),
        returned.len()
    );
    server
        .cli_ok(&["nodes", "list", "--json"])
        .and_then(|t| Ok(serde_json::from_str::<serde_json::Value>(&t)?))
        .expect("nodes list --json after the crash");

    // Signing works again, and is recorded.
    let (answer, _) = survivors[0]
        .sign("calico-node", "calico-node.kill-0")
        .await
        .expect("sign after restart");
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let serial = answer.body["serial"]
        .as_str()
        .expect("serial")
        .to_lowercase();
    let audit = server
        .cli_ok(&["audit", "--json", "--limit", "10000"])
        .expect("audit");
    assert!(
        audited_serials(&audit).contains(&serial),
        "{serial} not audited"
    );
}
