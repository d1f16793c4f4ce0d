//! Issue 8, high availability, end to end: real `calseg-server` replicas sharing their state in
//! a real 3-member etcd cluster (`[store] backend = "etcd"`), with simulated nodes that fail
//! over between replicas as agents do.
//! - The leader is SIGKILLed in the middle of a rollout in waves: another replica takes the lead
//!   and finishes it; no glob token is used more often than allowed, no serial is issued twice,
//!   and every report a replica acknowledged is in the store.
//! - One etcd member is stopped: enrollment, signing, reports, election and reloads go on.
//! - A replica is cut off from the network (its namespace's link down): the real agent in a
//!   sandbox fails over to the other replica and converges on a policy given meanwhile.
//! - `migrate-store` copies a used embedded store to etcd and back; a server runs on the copy,
//!   and the round trip compares equal record by record.

use calseg_api::rollout::RolloutState;
use calseg_tests::agent_host::{AgentHost, STANDIN_UNIT};
use calseg_tests::api_client::{TestNode, report_at, sim_fleet_policy};
use calseg_tests::etcd::{EtcdCluster, EtcdOptions};
use calseg_tests::netns::NetNs;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The leader lease of the replicas here: a dead leader is replaced within about this long.
const LEADER_TTL: &str = "3s";

/// A simulated node that knows every replica, and sticks to the one that last answered.
struct FailoverNode {
    /// The same node (key, certificate) addressed to each replica.
    views: Vec<TestNode>,
    current: AtomicUsize,
}

impl FailoverNode {
    fn name(&self) -> &str {
        &self.views[0].name
    }

    /// The view to use now.
    fn view(&self) -> &TestNode {
        &self.views[self.current.load(Ordering::Relaxed) % self.views.len()]
    }

    /// Moves to the next replica after a failed call.
    fn fail_over(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one simulated node saw and what the replicas acknowledged.
#[derive(Debug, Default)]
struct Seen {
    /// Policy revisions the node received a manifest of.
    policies: BTreeSet<u64>,
    /// The manifest revision of the last report a replica answered 2xx to.
    acked_report: Option<String>,
}

/// Long-polls the manifest and reports each new one, failing over on errors and 5xx, until
/// `stop`.
async fn simulate(node: Arc<FailoverNode>, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let mut etag = String::new();
    while !stop.load(Ordering::Relaxed) {
        let view = node.view();
        let answer = if etag.is_empty() {
            view.manifest(None).await.map(|a| (a, None))
        } else {
            view.manifest_wait(&etag, 2).await
        };
        let answer = match answer {
            Ok((answer, _)) if answer.status.is_server_error() => {
                node.fail_over();
                continue;
            }
            Ok((answer, _)) if answer.status == StatusCode::OK => answer,
            Ok((_, retry_after)) => {
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(0))).await;
                continue;
            }
            Err(_) => {
                node.fail_over();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        etag = answer.etag.clone().unwrap_or_default();
        let policy = answer.body["policy_revision"].as_u64().unwrap_or(0);
        let revision = answer.body["revision"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().policies.insert(policy);
        // A report that fails is sent again (to the next replica) until one acknowledges it.
        for _ in 0..20 {
            match node.view().report(&report_at(&revision, &[])).await {
                Ok(answer) if answer.status.is_success() => {
                    seen.lock().unwrap().acked_report = Some(revision.clone());
                    break;
                }
                _ => {
                    node.fail_over();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Waits until exactly one running replica leads, and returns it.
async fn wait_for_one_leader(
    replicas: &[ServerProcess],
    running: &[bool],
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = Vec::new();
        for (index, replica) in replicas.iter().enumerate() {
            if running[index]
                && let Ok(text) = replica.scrape().await
                && text.lines().any(|l| l == "calseg_leader 1")
            {
                leaders.push(index);
            }
        }
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            Instant::now() < deadline,
            "no single leader within {within:?}: leaders {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One node per name, addressed to every replica, enrolled through replica `i % n` (with
/// `token` when given). Returns the enrolled ones and the answers of the refused ones.
async fn enroll_spread(
    replicas: &[ServerProcess],
    names: &[String],
    token: Option<&str>,
) -> (Vec<Arc<FailoverNode>>, Vec<(String, String)>) {
    let fleet_ca = replicas[0].fleet_ca_pem();
    let mut enrolling = tokio::task::JoinSet::new();
    for (index, name) in names.iter().enumerate() {
        let mut first = TestNode::new(name, &replicas[index % replicas.len()].url(), &fleet_ca)
            .expect("node key");
        let urls: Vec<String> = replicas.iter().map(ServerProcess::url).collect();
        let token = token.map(str::to_owned);
        enrolling.spawn(async move {
            let answer = first.enroll(token.as_deref()).await.expect("enroll call");
            if answer.status != StatusCode::OK {
                return Err((first.name.clone(), answer.body.to_string()));
            }
            let views = urls
                .iter()
                .map(|url| TestNode {
                    name: first.name.clone(),
                    base: url.clone(),
                    fleet_ca_pem: first.fleet_ca_pem.clone(),
                    key_pem: first.key_pem.clone(),
                    csr_pem: first.csr_pem.clone(),
                    cert_pem: first.cert_pem.clone(),
                })
                .collect();
            Ok(Arc::new(FailoverNode {
                views,
                current: AtomicUsize::new(index),
            }))
        });
    }
    let mut enrolled = Vec::new();
    let mut refused = Vec::new();
    for outcome in enrolling.join_all().await {
        match outcome {
            Ok(node) => enrolled.push(node),
            Err(refusal) => refused.push(refusal),
        }
    }
    enrolled.sort_by(|a, b| a.name().cmp(b.name()));
    (enrolled, refused)
}

/// Signs one calico-node identity per node, through replica `i + 1` (all at once); returns the
/// serials.
async fn sign_spread(nodes: &[Arc<FailoverNode>]) -> Vec<String> {
    let mut signing = tokio::task::JoinSet::new();
    for (index, node) in nodes.iter().enumerate() {
        let node = Arc::clone(node);
        signing.spawn(async move {
            let view = &node.views[(index + 1) % node.views.len()];
            let cn = format!("calico-node.{}", node.name());
            let (answer, _key) = view.sign("calico-node", &cn).await.expect("sign call");
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{}: {:?}",
                node.name(),
                answer
            );
            answer.body["serial"].as_str().expect("serial").to_owned()
        });
    }
    signing.join_all().await
}

/// `nodes list --json` through `replica`: name → the revision of its last stored report.
fn stored_reports(replica: &ServerProcess) -> HashMap<String, Option<String>> {
    let out = replica
        .cli_ok(&["nodes", "list", "--json"])
        .expect("nodes list");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("nodes json");
    rows.iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap_or_default().to_owned(),
                row["inventory"]["revision"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// A glob token for `glob` with `uses`, created through `replica`'s admin CLI.
fn glob_token(replica: &ServerProcess, glob: &str, uses: u32) -> String {
    replica
        .cli_ok(&[
            "token",
            "create",
            "--match",
            glob,
            "--uses",
            &uses.to_string(),
            "--ttl",
            "1h",
        ])
        .expect("token create")
        .trim()
        .to_owned()
}

/// A 3-member etcd and `count` replicas on loopback serving the simulated fleet's policy
/// (unit `a.service`), auto-approving `auto_approve`; waits for one of them to lead.
async fn sim_world(count: usize, auto_approve: &str) -> (EtcdCluster, Vec<ServerProcess>, usize) {
    let etcd = EtcdCluster::start_with(EtcdOptions {
        members: 3,
        ..EtcdOptions::default()
    })
    .await
    .expect("etcd");
    let places = vec![None; count];
    let replicas = ServerProcess::start_replicas(
        &etcd,
        &sim_fleet_policy(&etcd.endpoint(0), "a.service", ""),
        &format!("auto_approve = [\"{auto_approve}\"]"),
        &places,
        LEADER_TTL,
    )
    .await
    .expect("replicas");
    let leader = wait_for_one_leader(&replicas, &vec![true; count], Duration::from_secs(20)).await;
    (etcd, replicas, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_killed_mid_rollout_another_replica_finishes_it_and_nothing_is_lost() {
    let (etcd, mut replicas, first_leader) = sim_world(3, "sim-a-*").await;
    let endpoint = etcd.endpoint(0);
    let mut running = vec![true; 3];

    // Enrollment through every replica at once: 40 auto-approved nodes, and 30 nodes racing
    // for a token that allows 20.
    let auto: Vec<String> = (0..40).map(|i| format!("sim-a-{i:02}")).collect();
    let (mut nodes, refused) = enroll_spread(&replicas, &auto, None).await;
    assert!(
        refused.is_empty(),
        "auto-approved nodes refused: {refused:?}"
    );
    let token = glob_token(&replicas[1], "sim-t-*", 20);
    let candidates: Vec<String> = (0..30).map(|i| format!("sim-t-{i:02}")).collect();
    let (with_token, refused) = enroll_spread(&replicas, &candidates, Some(&token)).await;
    assert_eq!(
        (with_token.len(), refused.len()),
        (20, 10),
        "a 20-use token across 3 replicas: refusals {refused:?}"
    );
    assert!(
        refused.iter().all(|(_, body)| body.contains("exhausted")),
        "{refused:?}"
    );
    nodes.extend(with_token);
    nodes.sort_by(|a, b| a.name().cmp(b.name()));

    // Identities signed through every replica at once: no serial twice.
    let serials = sign_spread(&nodes).await;
    let distinct: BTreeSet<&String> = serials.iter().collect();
    assert_eq!(distinct.len(), serials.len(), "a serial was issued twice");

    // The simulated fleet long-polls and reports, each node starting on a different replica.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = nodes.iter().map(|_| Arc::default()).collect();
    let sims: Vec<_> = nodes
        .iter()
        .zip(&seen)
        .map(|(node, seen)| {
            tokio::spawn(simulate(
                Arc::clone(node),
                Arc::clone(seen),
                Arc::clone(&stop),
            ))
        })
        .collect();

    // A new policy in waves, given to every replica's file; the leader is told to reload.
    let waves = "[rollout]\ncanary = 1\nwave = \"25%\"\nbake = \"2s\"\n";
    for replica in &replicas {
        std::fs::write(
            replica.policy_path(),
            sim_fleet_policy(&endpoint, "b.service", waves),
        )
        .unwrap();
    }
    replicas[first_leader].reload().expect("SIGHUP the leader");

    // Once two waves are open, the leader dies.
    let other = (first_leader + 1) % 3;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = replicas[other].rollout_status().expect("rollout status");
        let waves = status.waves.as_ref();
        if waves.is_some_and(|w| w.to_revision == 2 && w.opened_waves >= 2) {
            assert_eq!(waves.unwrap().state, RolloutState::Running, "{status:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "two waves open: {status:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    replicas[first_leader].kill_hard().expect("kill the leader");
    running[first_leader] = false;

    // Another replica leads and finishes the rollout.
    let second_leader = wait_for_one_leader(&replicas, &running, Duration::from_secs(20)).await;
    assert_ne!(second_leader, first_leader);
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let status = replicas[other].rollout_status().expect("rollout status");
        if status.waves.as_ref().map(|w| w.state) == Some(RolloutState::Done)
            && status.converged == nodes.len()
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout finishes: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(done.policy_revision, Some(2));
    let log = replicas[second_leader].log();
    assert!(log.contains("this replica leads"), "{log}");

    stop.store(true, Ordering::Relaxed);
    for sim in sims {
        let _ = tokio::time::timeout(Duration::from_secs(10), sim).await;
    }

    // Every node got revision 2; every acknowledged report is the one stored.
    let stored = stored_reports(&replicas[other]);
    for (node, seen) in nodes.iter().zip(&seen) {
        let seen = seen.lock().unwrap();
        assert!(
            seen.policies.contains(&2),
            "{} never got revision 2",
            node.name()
        );
        assert_eq!(
            stored.get(node.name()),
            Some(&seen.acked_report),
            "{}: the last acknowledged report is not the stored one",
            node.name()
        );
    }

    // The token was used exactly 20 times, by the 20 nodes that enrolled with it.
    let tokens: Vec<serde_json::Value> = serde_json::from_str(
        &replicas[other]
            .cli_ok(&["token", "list", "--json"])
            .expect("token list"),
    )
    .unwrap();
    let uses: BTreeSet<String> = tokens[0]["uses"]
        .as_array()
        .expect("uses")
        .iter()
        .map(|u| u.as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: BTreeSet<String> = nodes
        .iter()
        .map(|n| n.name().to_owned())
        .filter(|n| n.starts_with("sim-t-"))
        .collect();
    assert_eq!(uses, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_one_etcd_member_stopped_replicas_keep_enrolling_signing_and_electing() {
    let (mut etcd, mut replicas, _) = sim_world(2, "sim-*").await;
    let endpoint = etcd.endpoint(0);
    let mut running = vec![true; 2];

    etcd.stop_member(0);
    let names: Vec<String> = (0..10).map(|i| format!("sim-m-{i}")).collect();
    let (nodes, refused) = enroll_spread(&replicas, &names, None).await;
    assert!(refused.is_empty(), "{refused:?}");
    let serials = sign_spread(&nodes).await;
    assert_eq!(serials.iter().collect::<BTreeSet<_>>().len(), 10);
    for node in &nodes {
        let answer = node.views[1]
            .report(&report_at("r", &[]))
            .await
            .expect("report");
        assert!(answer.status.is_success(), "{answer:?}");
    }
    let stored = stored_reports(&replicas[0]);
    assert_eq!(stored.len(), 10);
    assert!(
        stored.values().all(|r| r.as_deref() == Some("r")),
        "{stored:?}"
    );

    // Only calseg's own etcd user reads the state: a component identity is denied.
    let component = etcd.mint_client("calico-node.sim-m-0").expect("mint");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut client = etcd.client_as(&component).await.expect("client");
        let read = client
            .get(
                "/calseg/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await;
        let error = read
            .expect_err("a component identity read calseg's state")
            .to_string();
        if error.contains("permission denied") {
            break;
        }
        // Until the leader created the user, etcd refuses the name instead.
        assert!(Instant::now() < deadline, "denied by permission: {error}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A reload on one replica reaches the other through the store.
    for replica in &replicas {
        std::fs::write(
            replica.policy_path(),
            sim_fleet_policy(&endpoint, "b.service", ""),
        )
        .unwrap();
    }
    replicas[0].reload().expect("SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = replicas[1].rollout_status().expect("status");
        if status.policy_revision == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revision 2 on replica 1: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A reload of a policy that grants a component calseg's own state is refused; revision 2
    // stays in force.
    std::fs::write(
        replicas[0].policy_path(),
        sim_fleet_policy(&endpoint, "b.service", "").replace(
            "grants = \"calico-node\"",
            "grants = \"calico-node\"\nextra_grants = [ { prefix = \"/calseg/\", access = \"read\" } ]",
        ),
    )
    .unwrap();
    replicas[0].reload().expect("SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replicas[0].log().contains("policy reload refused") {
        assert!(Instant::now() < deadline, "{}", replicas[0].log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        replicas[0]
            .log()
            .contains("inside the server's state prefix"),
        "{}",
        replicas[0].log()
    );
    assert_eq!(
        replicas[1]
            .rollout_status()
            .expect("status")
            .policy_revision,
        Some(2)
    );

    // The leader dies too: the other replica takes over on the two members left.
    // (With a member down a leader whose keep-alive stream went to it steps down and the lead
    // passes on: wait for whoever leads now.)
    let leader_now = wait_for_one_leader(&replicas, &running, Duration::from_secs(20)).await;
    replicas[leader_now].kill_hard();
    running[leader_now] = false;
    let next = wait_for_one_leader(&replicas, &running, Duration::from_secs(20)).await;
    assert_ne!(next, leader_now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_copies_embedded_to_etcd_and_back_record_by_record() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let endpoint = etcd.endpoint(0);
    let mut server = ServerProcess::start(
        &etcd,
        &sim_fleet_policy(&endpoint, "a.service", ""),
        "auto_approve = [\"sim-*\"]",
    )
    .await
    .expect("server");
    // State worth copying: nodes, a used token, issued certificates, reports, the audit log.
    let fleet_ca = server.fleet_ca_pem();
    let mut nodes = Vec::new();
    for i in 0..5 {
        let mut node = TestNode::new(&format!("sim-{i}"), &server.url(), &fleet_ca).unwrap();
        assert_eq!(node.enroll(None).await.unwrap().status, StatusCode::OK);
        let (answer, _) = node
            .sign("calico-node", &format!("calico-node.sim-{i}"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        node.report(&report_at("r1", &[])).await.unwrap();
        nodes.push(node);
    }
    let token = glob_token(&server, "sim-x-*", 3);
    let mut extra = TestNode::new("sim-x-1", &server.url(), &fleet_ca).unwrap();
    assert_eq!(
        extra.enroll(Some(&token)).await.unwrap().status,
        StatusCode::OK
    );
    let before_nodes = server.cli_ok(&["nodes", "list", "--json"]).unwrap();
    let before_tokens = server.cli_ok(&["token", "list", "--json"]).unwrap();

    // A running server holds the embedded file: migrate-store refuses and says why.
    let busy = server
        .cli(&["migrate-store", "--from", "embedded", "--to", "etcd"])
        .unwrap();
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("still running"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    server.stop();

    let config = server.config_path();
    let to_etcd = server
        .cli(&["migrate-store", "--from", "embedded", "--to", "etcd"])
        .unwrap();
    assert!(
        to_etcd.status.success(),
        "{}",
        String::from_utf8_lossy(&to_etcd.stderr)
    );
    let said = String::from_utf8_lossy(&to_etcd.stdout);
    assert!(
        said.contains("verified record by record: 6 nodes, 1 tokens"),
        "{said}"
    );
    // Again: the target is not empty, nothing is written.
    let again = server
        .cli(&["migrate-store", "--from", "embedded", "--to", "etcd"])
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("import only into an empty store"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The server runs on the etcd copy and sees the same nodes and tokens.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("# backend = \"embedded\"", "backend = \"etcd\""),
    )
    .unwrap();
    server.restart().await.expect("serve from etcd");
    let on_etcd_nodes = server.cli_ok(&["nodes", "list", "--json"]).unwrap();
    let on_etcd_tokens = server.cli_ok(&["token", "list", "--json"]).unwrap();
    let strip = |text: &str| -> serde_json::Value {
        // The inventory's convergence fields depend on the clock, not on the store.
        let mut rows: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        for row in &mut rows {
            if let Some(map) = row.as_object_mut() {
                map.remove("convergence");
            }
        }
        serde_json::Value::Array(rows)
    };
    assert_eq!(strip(&on_etcd_nodes), strip(&before_nodes));
    assert_eq!(on_etcd_tokens, before_tokens);
    // Still usable: the token has 2 uses left, a node keeps reporting.
    let mut another = TestNode::new("sim-x-2", &server.url(), &fleet_ca).unwrap();
    assert_eq!(
        another.enroll(Some(&token)).await.unwrap().status,
        StatusCode::OK
    );
    server.stop();

    // And back, into a new file: the round trip verifies record by record.
    let back = server.dir().join("back.redb");
    let out = server
        .cli(&[
            "migrate-store",
            "--from",
            "etcd",
            "--to",
            "embedded",
            "--file",
            &back.display().to_string(),
        ])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("verified record by record: 7 nodes, 1 tokens"),
        "{said}"
    );
}

/// One real node's policy: calico-node with the stand-in unit; with `felix`, calico-felix too
/// (a second identity, restarting the same unit).
fn agent_policy(endpoint: &str, node: &str, felix: bool) -> String {
    let (felix_component, components) = if felix {
        (
            format!(
                "[components.calico-felix]\ngrants = [ {{ prefix = \"/calico/felix/v1/\", access = \"read\" }} ]\nrestart = [\"{STANDIN_UNIT}\"]\n"
            ),
            r#"["calico-node", "calico-felix"]"#,
        )
    } else {
        (String::new(), r#"["calico-node"]"#)
    };
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
{felix_component}[components.calico-node]
grants = [ {{ prefix = "/calico/ipam/v2/", access = "readwrite" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["{STANDIN_UNIT}"]
env_file = "/etc/calico/calico-node.env"
[[hosts]]
names = ["{node}"]
components = {components}
"#
    )
}

/// Polls until `done` holds for the agent, up to `within`.
async fn wait_agent(
    agent: &AgentHost,
    within: Duration,
    what: &str,
    done: impl Fn(&AgentHost) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(agent) {
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}; agent log:\n{}",
            agent.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `calseg-agent status --json`.
fn agent_status(agent: &AgentHost) -> serde_json::Value {
    let out = agent.agent("status --json").expect("status");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The server the agent uses now.
fn agent_server(agent: &AgentHost) -> String {
    agent_status(agent)["server"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The outcome of the agent's last cycle ("changed", "unchanged", ...).
fn last_outcome(agent: &AgentHost) -> String {
    agent_status(agent)["last_cycle"]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_from_the_network_its_agents_fail_over_and_converge() {
    let ns = NetNs::create().expect("network namespace");
    let etcd = EtcdCluster::start_with(EtcdOptions {
        members: 3,
        extra_listen_ips: vec![ns.link().host_addr.clone()],
        ..EtcdOptions::default()
    })
    .await
    .expect("etcd");
    let endpoint = etcd.endpoint(0);
    let node = "ha-agent1";
    let mut replicas = ServerProcess::start_replicas(
        &etcd,
        &agent_policy(&endpoint, node, false),
        "",
        &[Some(&ns), None],
        LEADER_TTL,
    )
    .await
    .expect("a replica in a namespace and one on loopback");
    let running = vec![true; 2];
    wait_for_one_leader(&replicas, &running, Duration::from_secs(20)).await;

    // The agent prefers the replica in the namespace.
    let isolated = replicas[0].url();
    let reachable = replicas[1].url();
    let agent = AgentHost::boot(node, &replicas[0]).await.expect("sandbox");
    agent
        .write_config_servers(&[&isolated, &reachable])
        .expect("agent.toml");
    agent.count_standin_starts().await.expect("count starts");
    agent
        .enroll(&replicas[0])
        .expect("enroll through the isolated replica");
    agent.start_daemon().expect("agent daemon");
    let cert = agent.host.path("/etc/calico/certs/calico-node/cert.pem");
    wait_agent(
        &agent,
        Duration::from_secs(60),
        "first identity installed",
        |a| cert.exists() && a.standin_starts() == 1 && last_outcome(a) == "changed",
    )
    .await;
    assert_eq!(agent_server(&agent), isolated);

    // Cut the replica off; a new policy (a second identity) arrives through the other.
    ns.link().set_up(false).expect("link down");
    for replica in &replicas {
        std::fs::write(replica.policy_path(), agent_policy(&endpoint, node, true)).unwrap();
    }
    let felix = agent.host.path("/etc/calico/certs/calico-felix/cert.pem");
    replicas[1].reload().expect("SIGHUP the reachable replica");
    let started = Instant::now();
    wait_agent(
        &agent,
        Duration::from_secs(120),
        "the new identity through the other replica",
        |a| a.standin_starts() == 2 && felix.exists(),
    )
    .await;
    eprintln!(
        "failed over and converged {:?} after the cut",
        started.elapsed()
    );
    assert_eq!(agent_server(&agent), reachable);
    let unit = agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
    assert_eq!(unit.active_state, "active", "{unit:?}");
    // The reachable replica leads now (the isolated one could not renew its lead).
    let leader_now = wait_for_one_leader(&replicas[1..], &[true], Duration::from_secs(20)).await;
    assert_eq!(leader_now, 0);
    // The agent's report of the new revision lands in the store through the reachable replica.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = replicas[1].rollout_status().expect("status");
        if (status.policy_revision, status.converged) == (Some(2), 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "converged on revision 2: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    replicas[0].stop();
}
