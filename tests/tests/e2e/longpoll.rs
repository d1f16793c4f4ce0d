//! Issue 7, pickup latency and load shedding, end to end: the real calseg-server process and
//! light simulated nodes. Nodes long-polling their manifest get the new one as soon as a policy
//! reload (SIGHUP) changes it; a node whose manifest did not change stays parked until its
//! deadline; `rollout status` counts the nodes that report the new revision; policy revisions
//! survive a restart; and beyond `max_in_flight` the server refuses with 429 `overloaded` and a
//! `Retry-After` instead of queueing, while parked long-polls do not count against the limit.

use calseg_api::paths;
use calseg_tests::api_client::{TestNode, report_at};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 20;
/// The deadline of the quiet node's long-poll (its manifest does not change).
const QUIET_WAIT: u64 = 8;

fn policy(endpoint: &str, unit: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
restart = ["{unit}"]
[components.cni-plugin]
grants = "cni-plugin"
[[hosts]]
match = "sim-*"
components = ["calico-node"]
[[hosts]]
match = "quiet-*"
components = ["cni-plugin"]
"#
    )
}

async fn enroll(server: &ServerProcess, name: &str) -> TestNode {
    let mut node = TestNode::new(name, &server.url(), &server.fleet_ca_pem()).expect("node");
    let mut answer = node.enroll(None).await.expect("enroll");
    // With `max_in_flight = 1` the previous call's permit may not be back yet.
    for _ in 0..50 {
        if answer.status != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = node.enroll(None).await.expect("enroll");
    }
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    node
}

/// The manifest, asked again while a 429 says a previous call still holds the one permit.
async fn manifest_served(node: &TestNode) -> calseg_tests::api_client::Answer {
    let mut answer = node.manifest(None).await.expect("manifest");
    for _ in 0..50 {
        if answer.status != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = node.manifest(None).await.expect("manifest");
    }
    answer
}

/// The manifest's ETag (quoted, as the header gives it) and revision.
async fn current(node: &TestNode) -> (String, String) {
    let answer = manifest_served(node).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let revision = answer.body["revision"]
        .as_str()
        .expect("revision")
        .to_owned();
    (answer.etag.expect("etag"), revision)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_reload_reaches_every_parked_node_and_rollout_status_counts_them() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let endpoint = etcd.endpoint(0);
    let mut server = ServerProcess::start(
        &etcd,
        &policy(&endpoint, "calico-node.service"),
        "auto_approve = [\"sim-*\", \"quiet-*\"]",
    )
    .await
    .expect("server");
    let mut nodes = Vec::new();
    for i in 0..NODES {
        nodes.push(Arc::new(enroll(&server, &format!("sim-{i:02}")).await));
    }
    let quiet = Arc::new(enroll(&server, "quiet-0").await);
    let mut before = Vec::new();
    for node in &nodes {
        before.push(current(node).await);
    }
    let (quiet_etag, quiet_revision) = current(&quiet).await;
    assert_eq!(
        server
            .rollout_status()
            .expect("rollout status")
            .policy_revision,
        Some(1)
    );

    // Every node parks a long-poll with its current ETag.
    let mut polls = Vec::new();
    for (node, (etag, _)) in nodes.iter().zip(&before) {
        let (node, etag) = (Arc::clone(node), etag.clone());
        polls.push(tokio::spawn(async move {
            let answer = node.manifest_wait(&etag, 30).await.expect("long-poll").0;
            (answer, Instant::now())
        }));
    }
    let quiet_poll = {
        let (quiet, etag) = (Arc::clone(&quiet), quiet_etag.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = quiet
                .manifest_wait(&etag, QUIET_WAIT)
                .await
                .expect("long-poll")
                .0;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        polls.iter().all(|p| !p.is_finished()) && !quiet_poll.is_finished(),
        "a long-poll with a current ETag was answered before anything changed"
    );

    // Change every sim node's manifest (its restart unit), not the quiet node's.
    std::fs::write(
        server.policy_path(),
        policy(&endpoint, "calico-node-v2.service"),
    )
    .expect("write policy");
    let reloaded = Instant::now();
    server.reload().expect("SIGHUP");

    let mut latencies = Vec::new();
    for (poll, (old_etag, old_revision)) in polls.into_iter().zip(&before) {
        let (answer, at) = poll.await.expect("join");
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_ne!(answer.etag.as_deref(), Some(old_etag.as_str()));
        let revision = answer.body["revision"].as_str().expect("revision");
        assert_ne!(revision, old_revision);
        assert_eq!(answer.body["policy_revision"], 2, "{}", answer.body);
        assert_eq!(
            answer.body["identities"][0]["restart"][0],
            "calico-node-v2.service"
        );
        latencies.push(at.saturating_duration_since(reloaded));
    }
    latencies.sort();
    println!(
        "pickup latency after SIGHUP over {NODES} parked nodes: min {:?} p50 {:?} p90 {:?} max {:?}",
        latencies[0],
        percentile(&latencies, 50),
        percentile(&latencies, 90),
        latencies[NODES - 1]
    );

    // The quiet node's manifest did not change: it stayed parked until its deadline.
    let (answer, waited) = quiet_poll.await.expect("join");
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{answer:?}");
    assert_eq!(answer.etag.as_deref(), Some(quiet_etag.as_str()));
    assert!(
        waited >= Duration::from_secs(QUIET_WAIT - 1),
        "answered after {waited:?}, before its {QUIET_WAIT} s deadline"
    );

    // Reports: 15 converge, 3 still run the old revision, 2 report errors.
    for (i, node) in nodes.iter().enumerate() {
        let new = current(node).await.1;
        let sent = match i {
            0..15 => report_at(&new, &[]),
            15..18 => report_at(&before[i].1, &[]),
            _ => report_at(&new, &["calico-node.service failed"]),
        };
        let answer = node.report(&sent).await.expect("report");
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    }
    quiet
        .report(&report_at(&quiet_revision, &[]))
        .await
        .expect("report");
    let status = server.rollout_status().expect("rollout status");
    assert_eq!(status.policy_revision, Some(2));
    assert_eq!(
        (
            status.approved,
            status.converged,
            status.pending,
            status.failed
        ),
        (NODES + 1, 16, 3, 2),
        "{status:?}"
    );
    assert_eq!(status.pending_nodes, ["sim-15", "sim-16", "sim-17"]);
    assert_eq!(status.failed_nodes, ["sim-18", "sim-19"]);
    let text = server
        .cli_ok(&["rollout", "status"])
        .expect("rollout status");
    assert!(text.contains("policy revision 2"), "{text}");
    assert!(text.contains("converged: 16"), "{text}");

    // The inventory says the same per node.
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&server.cli_ok(&["nodes", "list", "--json"]).expect("nodes"))
            .expect("nodes JSON");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .expect("row")
            .clone()
    };
    assert_eq!(row("sim-00")["convergence"], "converged");
    assert_eq!(row("sim-15")["convergence"], "pending");
    assert_eq!(row("sim-19")["convergence"], "failed");
    assert_eq!(
        row("sim-00")["current_revision"],
        row("sim-00")["inventory"]["revision"]
    );

    // A restart with the same policy keeps its number; a reload of an identical file too.
    server.restart().await.expect("restart");
    assert_eq!(
        server
            .rollout_status()
            .expect("rollout status")
            .policy_revision,
        Some(2)
    );
    server.reload().expect("SIGHUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = server.rollout_status().expect("rollout status");
    assert_eq!(status.policy_revision, Some(2));
    assert_eq!(status.history.len(), 2, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_max_in_flight_the_server_sheds_load_with_429_and_recovers() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(
        &etcd,
        &policy(&etcd.endpoint(0), "calico-node.service"),
        "auto_approve = [\"sim-*\"]\nmax_in_flight = 1",
    )
    .await
    .expect("server");
    let mut nodes = Vec::new();
    for i in 0..10 {
        // One at a time: enrollment goes through the same limit.
        nodes.push(Arc::new(enroll(&server, &format!("sim-{i:02}")).await));
    }

    // Parked long-polls give their permit back: three parked, and a plain call still passes.
    let mut parked = Vec::new();
    for node in &nodes[..3] {
        let (node, etag) = (Arc::clone(node), current(node).await.0);
        parked.push(tokio::spawn(async move {
            // Asked while another call holds the one permit: 429; ask again until it parks.
            let mut outcome = node.manifest_wait(&etag, 10).await;
            for _ in 0..50 {
                match &outcome {
                    Ok((answer, _)) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        outcome = node.manifest_wait(&etag, 10).await;
                    }
                    _ => break,
                }
            }
            outcome
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        parked.iter().all(|p| !p.is_finished()),
        "a long-poll was not parked"
    );
    let answer = manifest_served(&nodes[5]).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "a plain request was refused while only parked long-polls were open: {answer:?}"
    );

    // 50 requests at once over warm connections: 5 per node.
    let clients: Vec<_> = nodes.iter().map(|n| n.client().expect("client")).collect();
    let url = format!("{}{}", server.url(), paths::MANIFEST);
    for client in &clients {
        let warm = client.get(&url).send().await.expect("warm up");
        assert_eq!(warm.status(), StatusCode::OK);
    }
    // The limit is one request: two server workers on a burst overlap almost at once; a
    // few rounds make "never shed" a real failure, not bad luck.
    let (mut served, mut refused) = (0, 0);
    for _round in 0..5 {
        let start = Arc::new(tokio::sync::Barrier::new(50));
        let mut burst = Vec::new();
        for i in 0..50 {
            let (client, url, start) = (clients[i % 10].clone(), url.clone(), Arc::clone(&start));
            burst.push(tokio::spawn(async move {
                start.wait().await;
                let response = client.get(&url).send().await.expect("request");
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let body: serde_json::Value = response.json().await.expect("JSON body");
                (status, retry_after, body)
            }));
        }
        for request in burst {
            let (status, retry_after, body) = request.await.expect("join");
            match status {
                StatusCode::OK => served += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    refused += 1;
                    assert_eq!(body["kind"], "overloaded", "{body}");
                    let after = retry_after.expect("Retry-After on a 429");
                    assert!((1..=5).contains(&after), "Retry-After {after}");
                }
                other => panic!("neither served nor shed: {other} {body}"),
            }
        }
        if refused > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("bursts of 50 with max_in_flight = 1: {served} served, {refused} refused with 429");
    assert!(refused > 0, "no request was shed");
    assert!(served > 0, "every request was shed");

    // Healthy afterwards: every node is served again.
    for node in &nodes {
        let answer = manifest_served(node).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    let health = clients[0]
        .get(format!("{}{}", server.url(), paths::HEALTH))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    for poll in parked {
        let (answer, _) = poll.await.expect("join").expect("long-poll");
        assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{answer:?}");
    }
}
