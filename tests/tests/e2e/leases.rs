//! Issue 7, the restart budget, end to end: the real calseg-server process and many light
//! simulated nodes speaking its HTTP API. Concurrent lease requests never leave more holders
//! than `max_unavailable`, a refusal carries `Retry-After`, and a lease whose holder dies
//! frees its slot after `lease_ttl`.

use calseg_api::lease::{LeaseGrant, LeaseInfo, LeaseRequest};
use calseg_api::paths;
use calseg_tests::api_client::{TestNode, enroll_auto, https_client};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUDGET: usize = 3;
const NODES: usize = 50;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
restart = ["calico-node.service"]
[[hosts]]
match = "sim-*"
components = ["calico-node"]
[rollout]
max_unavailable = {BUDGET}
lease_ttl = "2s"
"#
    )
}

async fn setup() -> (EtcdCluster, ServerProcess, Vec<Arc<TestNode>>) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(
        &etcd,
        &policy(&etcd.endpoint(0)),
        "auto_approve = [\"sim-*\"]",
    )
    .await
    .expect("server");
    let names: Vec<String> = (0..NODES).map(|i| format!("sim-{i:02}")).collect();
    let nodes = enroll_auto(&server.url(), &server.fleet_ca_pem(), &names)
        .await
        .expect("enroll the simulated fleet");
    (etcd, server, nodes)
}

/// The server's live leases, through the admin API.
async fn live_leases(server: &ServerProcess) -> Vec<LeaseInfo> {
    let admin = server.dir().join("etc/admin");
    let cert = std::fs::read_to_string(admin.join("admin.pem")).expect("admin cert");
    let key = std::fs::read_to_string(admin.join("admin-key.pem")).expect("admin key");
    let client = https_client(&server.fleet_ca_pem(), Some((&cert, &key))).expect("client");
    let response = client
        .get(format!("{}{}", server.url(), paths::ADMIN_LEASES))
        .send()
        .await
        .expect("list leases");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("lease list")
}

enum Asked {
    Granted(LeaseGrant),
    Refused { retry_after: u64 },
}

async fn ask(node: &TestNode, client: &reqwest::Client) -> Asked {
    let request = LeaseRequest {
        units: vec!["calico-node.service".into()],
        revision: "r1".into(),
    };
    let response = client
        .post(format!("{}{}", node.base, paths::RESTART_LEASE))
        .json(&request)
        .send()
        .await
        .expect("lease request");
    match response.status() {
        StatusCode::OK => Asked::Granted(response.json().await.expect("grant")),
        StatusCode::TOO_MANY_REQUESTS => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("a 429 carries Retry-After in seconds");
            let body: serde_json::Value = response.json().await.expect("error body");
            assert_eq!(body["kind"], "restart_budget_full", "{body}");
            Asked::Refused { retry_after }
        }
        other => panic!("{}: lease request answered {other}", node.name),
    }
}

async fn release(node: &TestNode, client: &reqwest::Client, id: &str) -> StatusCode {
    client
        .delete(format!("{}{}", node.base, paths::lease(id)))
        .send()
        .await
        .expect("release")
        .status()
}

/// The most intervals open at one instant.
fn peak(intervals: &[(Instant, Instant)]) -> usize {
    let mut edges: Vec<(Instant, i32)> = intervals
        .iter()
        .flat_map(|(start, end)| [(*start, 1), (*end, -1)])
        .collect();
    // Ends sort before starts at the same instant: touching intervals do not overlap.
    edges.sort_by_key(|(at, delta)| (*at, *delta));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        open += delta;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}

#[tokio::test]
async fn concurrent_nodes_never_hold_more_leases_than_the_budget() {
    let (_etcd, server, nodes) = setup().await;
    let server = Arc::new(server);
    let deadline = Instant::now() + Duration::from_secs(6);

    // The server's own view, sampled while the nodes compete.
    let sampler = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let mut most = 0;
            while Instant::now() < deadline {
                most = most.max(live_leases(&server).await.len());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            most
        })
    };
    let mut competing = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = Arc::clone(node);
        competing.spawn(async move {
            let client = node.client().expect("client");
            // Held from the grant's arrival to before the release is sent: inside the server's
            // own lease, so overlaps here are overlaps there.
            let mut held = Vec::new();
            let mut refusals = 0u32;
            let mut round = 0u64;
            while Instant::now() < deadline && held.len() < 3 {
                round += 1;
                match ask(&node, &client).await {
                    Asked::Granted(grant) => {
                        let start = Instant::now();
                        // Times are kept to whole seconds, so up to one is lost.
                        assert!((1..=2).contains(&grant.ttl_secs), "{grant:?}");
                        let hold = 20 + (i as u64 * 37 + round * 11) % 60;
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                        let end = Instant::now();
                        assert_eq!(
                            release(&node, &client, &grant.lease_id).await,
                            StatusCode::NO_CONTENT
                        );
                        held.push((start, end));
                    }
                    Asked::Refused { retry_after } => {
                        assert!((1..=3).contains(&retry_after), "Retry-After {retry_after}");
                        refusals += 1;
                        // Far more eager than Retry-After, to press on the budget.
                        tokio::time::sleep(Duration::from_millis(10 + (i as u64 * 13) % 40)).await;
                    }
                }
            }
            (held, refusals)
        });
    }
    let mut intervals = Vec::new();
    let mut refusals = 0;
    for (held, refused) in competing.join_all().await {
        intervals.extend(held);
        refusals += refused;
    }
    let server_peak = sampler.await.expect("sampler");
    assert!(intervals.len() >= 20, "only {} grants", intervals.len());
    assert!(
        refusals > 0,
        "the budget was never full: the test proves nothing"
    );
    let client_peak = peak(&intervals);
    assert!(
        client_peak <= BUDGET,
        "{client_peak} nodes held a lease at once"
    );
    assert!(
        server_peak <= BUDGET,
        "the server listed {server_peak} live leases"
    );
    assert!(server_peak >= 1, "the sampler saw the leases");
    assert!(
        live_leases(&server).await.is_empty(),
        "every lease was released"
    );
}

#[tokio::test]
async fn a_dead_holder_s_lease_expires_and_frees_the_budget() {
    let (_etcd, server, nodes) = setup().await;
    let clients: Vec<reqwest::Client> = nodes
        .iter()
        .take(5)
        .map(|n| n.client().expect("client"))
        .collect();
    let mut dead = Vec::new();
    for (node, client) in nodes.iter().zip(&clients).take(BUDGET) {
        match ask(node, client).await {
            Asked::Granted(grant) => dead.push(grant),
            Asked::Refused { .. } => panic!("{} refused with the budget free", node.name),
        }
    }
    // Asking again while holding is a safe retry: the same lease.
    match ask(&nodes[0], &clients[0]).await {
        Asked::Granted(again) => assert_eq!(again.lease_id, dead[0].lease_id),
        Asked::Refused { .. } => panic!("a holder's retry was refused"),
    }
    let scraped = server.scrape().await.expect("scrape metrics");
    assert!(
        scraped
            .lines()
            .any(|l| l == format!("calseg_leases_held {BUDGET}")),
        "the leases gauge does not show the {BUDGET} live leases:\n{scraped}"
    );
    let refused_at = Instant::now();
    assert!(matches!(
        ask(&nodes[3], &clients[3]).await,
        Asked::Refused { .. }
    ));
    // Only the holder may release or renew.
    assert_eq!(
        release(&nodes[4], &clients[4], &dead[0].lease_id).await,
        StatusCode::FORBIDDEN
    );
    let renew = clients[4]
        .post(format!(
            "{}{}",
            server.url(),
            paths::lease_renew(&dead[0].lease_id)
        ))
        .send()
        .await
        .expect("renew");
    assert_eq!(renew.status(), StatusCode::FORBIDDEN);

    // The holders die: nobody releases. Within the 2 s TTL (plus a second of rounding) the
    // budget frees up by itself.
    let granted = loop {
        match ask(&nodes[3], &clients[3]).await {
            Asked::Granted(grant) => break grant,
            Asked::Refused { .. } => {
                assert!(
                    refused_at.elapsed() < Duration::from_secs(6),
                    "the dead leases never expired"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let waited = refused_at.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "granted after {waited:?}: the budget was not full"
    );
    // The dead leases were granted within a second or two of each other (stored times are
    // whole seconds), so some may outlive the first to expire by a moment; they go too.
    let mut live = live_leases(&server).await;
    for _ in 0..60 {
        assert!(
            live.iter()
                .all(|l| l.node == nodes[3].name || dead.iter().any(|d| d.lease_id == l.lease_id)),
            "a lease nobody asked for: {live:?}"
        );
        if live.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        live = live_leases(&server).await;
    }
    assert_eq!(live.len(), 1, "dead leases did not expire: {live:?}");
    assert_eq!(live[0].node, nodes[3].name);
    // An expired lease cannot be renewed, and a live one can.
    let expired = clients[0]
        .post(format!(
            "{}{}",
            server.url(),
            paths::lease_renew(&dead[0].lease_id)
        ))
        .send()
        .await
        .expect("renew");
    assert_eq!(expired.status(), StatusCode::NOT_FOUND);
    let renewed = clients[3]
        .post(format!(
            "{}{}",
            server.url(),
            paths::lease_renew(&granted.lease_id)
        ))
        .send()
        .await
        .expect("renew");
    assert_eq!(renewed.status(), StatusCode::OK);
}

/// Issue 17: a restart lease could be renewed forever, so one node held the budget. Now a
/// renewal past `max_lease_life` from the grant is refused (409 `lease_life_exceeded`,
/// audited, counted) and the slot goes to another node once the capped lease ends.
#[tokio::test]
async fn a_lease_is_not_renewed_past_its_longest_life_and_the_budget_frees_for_another_node() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let policy = policy(&etcd.endpoint(0))
        .replace(
            &format!("max_unavailable = {BUDGET}"),
            "max_unavailable = 1",
        )
        .replace(
            "lease_ttl = \"2s\"\n",
            "lease_ttl = \"2s\"\nmax_lease_life = \"5s\"\n",
        );
    let server = ServerProcess::start(&etcd, &policy, "auto_approve = [\"sim-*\"]")
        .await
        .expect("server");
    let names = ["sim-hog".to_owned(), "sim-next".to_owned()];
    let nodes = enroll_auto(&server.url(), &server.fleet_ca_pem(), &names)
        .await
        .expect("enroll");
    let (hog, next) = (&nodes[0], &nodes[1]);
    let (hog_client, next_client) = (
        hog.client().expect("client"),
        next.client().expect("client"),
    );
    let Asked::Granted(lease) = ask(hog, &hog_client).await else {
        panic!("the first lease was refused with the budget free");
    };
    let granted = Instant::now();
    let renew = || {
        calseg_tests::api_client::call(hog_client.post(format!(
            "{}{}",
            server.url(),
            paths::lease_renew(&lease.lease_id)
        )))
    };
    // The hog renews twice a second, as an agent that never finishes would; the other node
    // asks in between and is refused while the hog's lease lives.
    let refused = loop {
        assert!(
            granted.elapsed() < Duration::from_secs(10),
            "renewals were never refused: the lease would live forever"
        );
        let answer = renew().await.expect("renew");
        match answer.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT => break answer,
            other => panic!("renewal answered {other}: {answer:?}"),
        }
        assert!(
            matches!(ask(next, &next_client).await, Asked::Refused { .. }),
            "another node got a lease while the budget of 1 was held"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lived = granted.elapsed();
    assert_eq!(refused.kind(), "lease_life_exceeded", "{refused:?}");
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("at most 5s") && message.contains("max_lease_life"),
        "{message}"
    );
    assert!(
        lived >= Duration::from_secs(2),
        "refused after only {lived:?}"
    );
    // Refused again: the cap is for good, not one refusal.
    assert_eq!(renew().await.expect("renew").status, StatusCode::CONFLICT);
    // The capped lease ends by itself (the hog does not release it) and the other node's
    // turn comes: within the 5 s cap from the grant, plus a second of whole-second rounding.
    let turn = loop {
        match ask(next, &next_client).await {
            Asked::Granted(grant) => break grant,
            Asked::Refused { .. } => {
                assert!(
                    granted.elapsed() < Duration::from_secs(8),
                    "the capped lease still held the budget {:?} after its grant",
                    granted.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_ne!(turn.lease_id, lease.lease_id);
    let live = live_leases(&server).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].node, "sim-next");
    let audit = server.cli_ok(&["audit"]).expect("audit");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("sim-hog") && l.contains("lease_life_exceeded")),
        "the refused renewal is not audited:\n{audit}"
    );
    let scraped = server.scrape().await.expect("scrape");
    assert!(
        scraped
            .lines()
            .any(|l| l.starts_with("calseg_requests_denied_total{kind=\"lease_life_exceeded\"}")),
        "the refusal is not counted:\n{scraped}"
    );
}
