//! Issue 7, a rollout in waves under the restart budget with real agents among simulated ones:
//! 198 light simulated nodes and 2 real `calseg-agent run` daemons in sandboxed hosts (real
//! systemd, stand-in calico-node unit), `max_unavailable = 1`, `canary = 1`, `wave = "50%"`.
//! A simulated node takes a restart lease just before the reload and never gives it back (a
//! holder that died); a few other simulated nodes take a short lease for their new manifest,
//! to compete with the real agents. The real agents converge to the new revision and restart
//! their unit exactly once each; the server's lease list, sampled every 50 ms, never shows more
//! than one live lease; the dead holder's lease expires (`lease_ttl = "3s"`) and the rollout
//! reaches Done.

use calseg_api::lease::{LeaseGrant, LeaseInfo, LeaseRequest};
use calseg_api::paths;
use calseg_api::report::Report;
use calseg_api::rollout::{RolloutState, RolloutStatus};
use calseg_tests::agent_host::{AgentHost, STANDIN_UNIT, describe};
use calseg_tests::api_client::{TestNode, admin_client, enroll_auto, get_json};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SIMULATED: usize = 198;
/// Simulated nodes that take a lease for each new manifest, besides the dead holder.
const RESTARTERS: usize = 8;
const REAL: [&str; 2] = ["real-1", "real-2"];

fn policy(endpoint: &str, cert_mode: &str, waves: bool) -> String {
    let waves = if waves {
        "canary = 1\nwave = \"50%\"\nbake = \"0s\"\n"
    } else {
        ""
    };
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = [ {{ prefix = "/calico/ipam/v2/", access = "readwrite" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["{STANDIN_UNIT}"]
env_file = "/etc/calico/calico-node.env"
cert_mode = "{cert_mode}"
[[hosts]]
match = "sim-*"
components = ["calico-node"]
[[hosts]]
match = "real-*"
components = ["calico-node"]
[rollout]
max_unavailable = 1
lease_ttl = "3s"
{waves}"#
    )
}

async fn take_lease(node: &TestNode, client: &reqwest::Client) -> Option<LeaseGrant> {
    let request = LeaseRequest {
        units: vec![STANDIN_UNIT.into()],
        revision: "sim".into(),
    };
    let response = client
        .post(format!("{}{}", node.base, paths::RESTART_LEASE))
        .json(&request)
        .send()
        .await
        .ok()?;
    match response.status() {
        StatusCode::OK => response.json().await.ok(),
        StatusCode::TOO_MANY_REQUESTS => None,
        other => panic!("{}: lease request answered {other}", node.name),
    }
}

/// Long-polls the manifest until `stop` and reports every new one healthy; a restarter first
/// holds a restart lease for 150 ms (asking every 100 ms while the budget is full).
async fn simulate(node: Arc<TestNode>, restarter: bool, stop: Arc<AtomicBool>) {
    let client = node.client().expect("client");
    let mut etag = String::new();
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let Some(answer) = node.next_manifest(&mut etag, 2).await else {
            continue;
        };
        if restarter && !first {
            let grant = loop {
                if let Some(grant) = take_lease(&node, &client).await {
                    break grant;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = client
                .delete(format!("{}{}", node.base, paths::lease(&grant.lease_id)))
                .send()
                .await;
        }
        first = false;
        let report = Report {
            revision: answer.body["revision"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            identities: vec![],
            units: vec![],
            errors: vec![],
        };
        let _ = node.report(&report).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_agents_roll_out_within_the_restart_budget_past_a_dead_lease_holder() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let endpoint = etcd.endpoint(0);
    let server = Arc::new(
        ServerProcess::start(
            &etcd,
            &policy(&endpoint, "0644", false),
            "auto_approve = [\"sim-*\"]",
        )
        .await
        .expect("server"),
    );
    let admin = admin_client(&server).expect("admin client");
    let rollout_url = format!("{}{}", server.url(), paths::ADMIN_ROLLOUT);
    let leases_url = format!("{}{}", server.url(), paths::ADMIN_LEASES);

    // The real hosts boot while the simulated nodes enroll.
    let (a, b) = tokio::join!(
        AgentHost::boot(REAL[0], &server),
        AgentHost::boot(REAL[1], &server)
    );
    let hosts = [a.expect("sandbox"), b.expect("sandbox")];
    let names: Vec<String> = (0..SIMULATED).map(|i| format!("sim-{i:03}")).collect();
    let mut nodes = enroll_auto(&server.url(), &server.fleet_ca_pem(), &names)
        .await
        .expect("enroll the simulated fleet");
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    for host in &hosts {
        host.enroll(&server).expect("enroll");
        host.count_standin_starts().await.expect("drop-in");
    }
    // First cycle by hand: revision 1 installed, the stand-in started once. Until the
    // reconciler has created the host's etcd user, the agent's etcd check fails and it retries.
    for host in &hosts {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, out) = host.once().expect("once");
            if code == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {out}", host.node);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(host.standin_starts(), 1, "{}", host.node);
        host.start_daemon().expect("calseg-agent run");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sims: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            tokio::spawn(simulate(
                Arc::clone(node),
                (1..=RESTARTERS).contains(&i),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: RolloutStatus = get_json(&admin, &rollout_url).await.expect("status");
        if status.converged == SIMULATED + REAL.len() {
            assert_eq!(status.policy_revision, Some(1));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revision 1 converged: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A holder that dies: sim-000 takes the only slot and never releases or renews it.
    let dead = &nodes[0];
    // The lease is granted after this instant, so it lives until at least 3 s after it.
    let asked = Instant::now();
    let dead_lease = take_lease(dead, &dead.client().expect("client"))
        .await
        .expect("the budget is free");
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (admin, url, sampling) = (admin.clone(), leases_url.clone(), Arc::clone(&sampling));
        tokio::spawn(async move {
            // (instant, live leases) per sample.
            let mut samples: Vec<(Instant, Vec<LeaseInfo>)> = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                let live: Vec<LeaseInfo> = get_json(&admin, &url).await.expect("leases");
                samples.push((Instant::now(), live));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        })
    };

    // Revision 2: a new cert mode, so a new identity and a restart for every real agent.
    std::fs::write(server.policy_path(), policy(&endpoint, "0640", true)).unwrap();
    let reloaded = Instant::now();
    server.reload().expect("SIGHUP");
    let deadline = reloaded + Duration::from_secs(30);
    let done = loop {
        let status: RolloutStatus = get_json(&admin, &rollout_url).await.expect("status");
        if let Some(w) = status.waves.as_ref().filter(|w| w.to_revision == 2) {
            assert!(
                !matches!(w.state, RolloutState::Paused | RolloutState::Aborted),
                "the rollout stopped: {status:#?}"
            );
            if w.state == RolloutState::Done {
                break status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the rollout is not done 30 s after the reload: {status:#?}\n{}\n{}",
            hosts[0].daemon_log(),
            hosts[1].daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let waves = done.waves.clone().unwrap();
    assert_eq!((waves.opened_waves, waves.total_waves), (3, 3), "{done:#?}");
    assert_eq!(done.converged, SIMULATED + REAL.len(), "{done:#?}");
    // A moment more: a second restart would show now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");

    // (a) The real agents converged and restarted their stand-in exactly once each.
    for host in &hosts {
        assert_eq!(
            host.standin_starts(),
            2,
            "{}: one start at install, one restart for revision 2\n{}",
            host.node,
            host.daemon_log()
        );
        let unit = host.host.unit_status(STANDIN_UNIT).await.expect("unit");
        assert_eq!(unit.active_state, "active", "{}: {unit:?}", host.node);
        let mode = host
            .host
            .exec("stat -L -c %a /etc/calico/certs/calico-node/cert.pem")
            .expect("stat");
        assert!(
            String::from_utf8_lossy(&mode.stdout).starts_with("640"),
            "{}",
            describe(&mode)
        );
    }
    // (b) Never more than one live lease, as the server counts them.
    let peak = samples.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    assert!(samples.len() >= 20, "only {} samples", samples.len());
    assert!(peak <= 1, "the server listed {peak} live leases at once");
    let holders: BTreeSet<&str> = samples
        .iter()
        .flat_map(|(_, l)| l.iter().map(|l| l.node.as_str()))
        .collect();
    for real in REAL {
        assert!(
            holders.contains(real),
            "{real} never held a lease: {holders:?}"
        );
    }
    // (c) The dead holder's lease blocked the budget until it expired, then went by itself.
    let dead_seen: Vec<Instant> = samples
        .iter()
        .filter(|(_, l)| l.iter().any(|l| l.lease_id == dead_lease.lease_id))
        .map(|(at, _)| *at)
        .collect();
    let last_dead = *dead_seen.last().expect("the dead lease was live at first");
    // Measured from before the grant: under load the answer that carries the lease can take
    // over a second to arrive, which shortened a window measured from the reload (it once read
    // 1.45 s). Seen live 2 s into its 3 s is seen blocking the budget until it expired.
    assert!(
        last_dead - asked >= Duration::from_millis(2000),
        "the dead lease went {:?} after it was asked for (ttl 3 s)",
        last_dead - asked
    );
    let first_other = samples
        .iter()
        .find(|(_, l)| l.iter().any(|l| l.lease_id != dead_lease.lease_id))
        .map(|(at, _)| *at)
        .expect("other leases");
    assert!(first_other > last_dead, "a lease beside the dead one");
    assert!(
        get_json::<Vec<LeaseInfo>>(&admin, &leases_url)
            .await
            .expect("leases")
            .is_empty(),
        "a lease left over"
    );
    stop.store(true, Ordering::Relaxed);
    for sim in sims {
        let _ = tokio::time::timeout(Duration::from_secs(10), sim).await;
    }
}
