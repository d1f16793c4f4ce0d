//! Issue 7, rollouts in waves with health gates, end to end: the real calseg-server process and
//! 200 light simulated nodes that long-poll their manifest and report each new one. With
//! `canary = 1` and `wave = "25%"`: a canary that reports errors pauses the rollout before any
//! other node gets the new policy; `rollout rollback` sends the canary back to the previous
//! manifest; a restart resumes the rollout from the store; a healthy rollout opens its waves one by one (no node sees the new policy before
//! its wave opens) and reaches Done.

use calseg_api::rollout::{RolloutState, RolloutStatus};
use calseg_tests::api_client::{TestNode, enroll_auto, report_at, sim_fleet_policy};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The wave settings of the rollouts here.
const WAVES: &str = "[rollout]\ncanary = 1\nwave = \"25%\"\nbake = \"0s\"\n";
const NODES: usize = 200;

/// What one simulated node saw: when it first got each policy revision (Unix seconds, with
/// fractions), and its latest manifest.
#[derive(Debug, Default)]
struct Seen {
    first: HashMap<u64, f64>,
    latest_policy: u64,
    latest_revision: String,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The nodes that have seen policy revision `policy`.
fn seen_count(seen: &[Arc<Mutex<Seen>>], policy: u64) -> usize {
    seen.iter()
        .filter(|s| s.lock().unwrap().first.contains_key(&policy))
        .count()
}

/// Long-polls the manifest until `stop`; reports every new manifest (with errors for policy
/// revision `failing`).
async fn simulate(
    node: Arc<TestNode>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    failing: u64,
) {
    let mut etag = String::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(answer) = node.next_manifest(&mut etag, 2).await else {
            continue;
        };
        let policy = answer.body["policy_revision"].as_u64().unwrap_or(0);
        let revision = answer.body["revision"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        {
            let mut seen = seen.lock().unwrap();
            seen.first.entry(policy).or_insert_with(unix_now);
            seen.latest_policy = policy;
            seen.latest_revision = revision.clone();
        }
        let errors: &[&str] = if policy == failing {
            &["calico-node.service failed"]
        } else {
            &[]
        };
        // A lost report is sent again with the next manifest; the rollout waits meanwhile.
        let _ = node.report(&report_at(&revision, errors)).await;
    }
}

/// Polls `rollout status` until `done` holds for it, checking `check` on every status with what
/// `probe` gave just before the status was read.
fn wait_for(
    server: &ServerProcess,
    within: Duration,
    what: &str,
    probe: impl Fn() -> usize,
    check: impl Fn(&RolloutStatus, usize),
    done: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let deadline = Instant::now() + within;
    loop {
        let probed = probe();
        let status = server.rollout_status().expect("rollout status");
        check(&status, probed);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}: {status:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn state_of(status: &RolloutStatus) -> Option<RolloutState> {
    status.waves.as_ref().map(|w| w.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waves_gate_on_health_pause_on_a_failing_canary_roll_back_and_finish() {
    let started = Instant::now();
    let etcd = EtcdCluster::start().await.expect("etcd");
    let endpoint = etcd.endpoint(0);
    let mut server = ServerProcess::start(
        &etcd,
        &sim_fleet_policy(&endpoint, "a.service", ""),
        "auto_approve = [\"sim-*\"]",
    )
    .await
    .expect("server");

    // Enroll the fleet, 20 at a time.
    let names: Vec<String> = (0..NODES).map(|i| format!("sim-{i:03}")).collect();
    let nodes = enroll_auto(&server.url(), &server.fleet_ca_pem(), &names)
        .await
        .expect("enroll the simulated fleet");
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..NODES).map(|_| Arc::default()).collect();
    let mut sims = Vec::new();
    for (node, seen) in nodes.iter().zip(&seen) {
        sims.push(tokio::spawn(simulate(
            Arc::clone(node),
            Arc::clone(seen),
            Arc::clone(&stop),
            2,
        )));
    }
    let status = tokio::task::block_in_place(|| {
        wait_for(
            &server,
            Duration::from_secs(20),
            "every node on revision 1",
            || 0,
            |_, _| {},
            |s| s.converged == NODES,
        )
    });
    assert_eq!((status.policy_revision, status.waves), (Some(1), None));
    let initial: Vec<String> = seen
        .iter()
        .map(|s| s.lock().unwrap().latest_revision.clone())
        .collect();

    // Revision 2 with waves; every node that gets it reports errors: the canary pauses it.
    std::fs::write(
        server.policy_path(),
        sim_fleet_policy(&endpoint, "b.service", WAVES),
    )
    .unwrap();
    server.reload().expect("SIGHUP");
    let paused = tokio::task::block_in_place(|| {
        wait_for(
            &server,
            Duration::from_secs(15),
            "the failing canary pauses the rollout",
            || seen_count(&seen, 2),
            |_, saw| assert!(saw <= 1, "only the canary may get revision 2, {saw} did"),
            |s| state_of(s) == Some(RolloutState::Paused),
        )
    });
    let waves = paused.waves.clone().unwrap();
    assert_eq!((waves.from_revision, waves.to_revision), (1, 2));
    assert_eq!((waves.opened_waves, waves.total_waves), (1, 5));
    let sizes: Vec<usize> = waves.waves.iter().map(|w| w.size).collect();
    assert_eq!(sizes, [1, 50, 50, 50, 49]);
    assert_eq!(waves.waves[0].failed, 1);
    let canary = waves.waves[0].failed_nodes[0].clone();
    let canary_index = nodes.iter().position(|n| n.name == canary).unwrap();
    assert!(seen[canary_index].lock().unwrap().first.contains_key(&2));
    // Paused stays paused: nobody else changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen_count(&seen, 2), 1);
    let still = server.rollout_status().expect("rollout status");
    assert_eq!(state_of(&still), Some(RolloutState::Paused));
    assert_eq!(still.waves.unwrap().opened_waves, 1);

    // A restart resumes the paused rollout from the store: still only the canary on revision 2.
    server.restart().await.expect("restart");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        seen_count(&seen, 2),
        1,
        "the restarted server kept the waves"
    );
    let (code, resumed) = server.rollout_status_code().expect("rollout status");
    assert_eq!(state_of(&resumed), Some(RolloutState::Paused));
    assert_eq!(resumed.waves.unwrap().opened_waves, 1);
    // Issue 18, point 2: paused needs an operator: `status` and `watch` exit 2, not 0.
    assert_eq!(code, 2, "rollout status while paused");
    let watch = server
        .cli(&["rollout", "watch", "--timeout", "5s"])
        .unwrap();
    assert_eq!(watch.status.code(), Some(2), "{watch:?}");
    assert!(String::from_utf8_lossy(&watch.stdout).contains("1 -> 2: paused"));

    // Rollback: the canary's next manifest is its old one.
    let out = server.cli_ok(&["rollout", "rollback"]).expect("rollback");
    assert!(out.contains("rolled_back"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen[canary_index].lock().unwrap().latest_policy != 1 {
        assert!(
            Instant::now() < deadline,
            "the canary is back on revision 1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        assert_eq!(
            (s.latest_policy, &s.latest_revision),
            (1, &initial[i]),
            "node {i}"
        );
    }
    let (code, back) = server.rollout_status_code().expect("rollout status");
    assert_eq!(state_of(&back), Some(RolloutState::RolledBack));
    assert_eq!(back.policy_revision, Some(1));
    // Issue 18, point 2: a rolled back rollout failed: `status` and `watch` exit 1.
    assert_eq!(code, 1, "rollout status after a rollback");
    let watch = server
        .cli(&["rollout", "watch", "--timeout", "5s"])
        .unwrap();
    assert_eq!(watch.status.code(), Some(1), "{watch:?}");
    assert!(String::from_utf8_lossy(&watch.stdout).contains("rolled_back"));
    assert!(
        server.cli(&["rollout", "resume"]).unwrap().status.code() != Some(0),
        "a rolled back rollout cannot resume"
    );

    // Revision 3, healthy: waves open one by one and the rollout finishes.
    std::fs::write(
        server.policy_path(),
        sim_fleet_policy(&endpoint, "c.service", WAVES),
    )
    .unwrap();
    server.reload().expect("SIGHUP");
    let done = tokio::task::block_in_place(|| {
        wait_for(
            &server,
            Duration::from_secs(30),
            "the healthy rollout is done",
            || seen_count(&seen, 3),
            |status, saw| {
                // Counted before the status was read: whoever saw revision 3 was in a wave
                // opened by then.
                let opened = status
                    .waves
                    .as_ref()
                    .filter(|w| w.to_revision == 3)
                    .map_or(0, |w| {
                        w.waves.iter().take(w.opened_waves).map(|w| w.size).sum()
                    });
                assert!(
                    saw <= opened,
                    "{saw} nodes saw revision 3 with {opened} in opened waves"
                );
            },
            |s| {
                state_of(s) == Some(RolloutState::Done)
                    && s.waves.as_ref().is_some_and(|w| w.to_revision == 3)
            },
        )
    });
    let waves = done.waves.clone().unwrap();
    assert_eq!((waves.from_revision, waves.to_revision), (1, 3));
    assert_eq!(waves.opened_waves, 5);
    assert_eq!(done.policy_revision, Some(3));
    assert_eq!(done.converged, NODES);
    // No node saw revision 3 before its wave opened: for each wave, the nodes that first saw
    // it before the wave's opening second are at most the nodes of the earlier waves.
    let opened_at: Vec<i64> = waves.waves.iter().map(|w| w.opened_at.unwrap()).collect();
    assert!(opened_at.windows(2).all(|p| p[0] <= p[1]), "{opened_at:?}");
    let firsts: Vec<f64> = seen
        .iter()
        .map(|s| {
            *s.lock()
                .unwrap()
                .first
                .get(&3)
                .expect("every node saw revision 3")
        })
        .collect();
    let mut earlier = 0;
    for (k, wave) in waves.waves.iter().enumerate() {
        let before = firsts.iter().filter(|t| **t < opened_at[k] as f64).count();
        assert!(
            before <= earlier,
            "wave {k}: {before} nodes before it opened, {earlier} allowed"
        );
        earlier += wave.size;
    }
    // `watch` ends at once on a done rollout; there is nothing left to pause.
    let watch = server
        .cli(&["rollout", "watch", "--timeout", "5s"])
        .unwrap();
    assert_eq!(watch.status.code(), Some(0), "{watch:?}");
    assert!(String::from_utf8_lossy(&watch.stdout).contains("1 -> 3: done, waves opened 5/5"));
    assert_eq!(server.rollout_status_code().unwrap().0, 0, "done");
    assert_ne!(
        server.cli(&["rollout", "pause"]).unwrap().status.code(),
        Some(0)
    );
    stop.store(true, Ordering::Relaxed);
    for sim in sims {
        let _ = tokio::time::timeout(Duration::from_secs(10), sim).await;
    }
    let log = server.log();
    assert!(log.contains("rollout paused"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
