//! A request that races an etcd auth change: etcd refuses it ("revision of auth store is old")
//! when any auth change lands between its arrival and its apply, as happens all the time while
//! the server reconciles many identities. The agent's check that a new identity works must not
//! fail for that: it is sent again, as Calico's own Go client does. Real etcd, the agent's real
//! verifier.

use calseg_agent::cycle::Probe;
use calseg_agent::cycle::Verifier;
use calseg_agent::cycle::real::EtcdVerifier;
use calseg_agent::keys::PrivateKeyPem;
use calseg_tests::etcd::EtcdCluster;
use etcd_client::{GetOptions, Permission, UserAddOptions};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const USER: &str = "calico-node.n1";
const KEY: &str = "/calico/felix/v1/host/n1/status";
const RACED: &str = "revision of auth store is old";
/// Users besides the one checked.
const USERS: usize = 300;

/// Auth changes back to back from `loops` tasks (a permission granted again and again on a
/// scratch role: each grant is an auth change), until `stop`.
fn churn_auth(etcd_client: etcd_client::Client, loops: usize, stop: Arc<AtomicBool>) {
    for i in 0..loops {
        let mut client = etcd_client.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let role = format!("scratch-{i}");
            client.role_add(role.as_str()).await.expect("role add");
            while !stop.load(Ordering::Relaxed) {
                let grant = Permission::read(format!("/scratch/{i}"));
                client
                    .role_grant_permission(role.as_str(), grant)
                    .await
                    .expect("grant");
            }
        });
    }
}

#[tokio::test]
async fn the_agents_identity_check_survives_auth_changes_landing_meanwhile() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let mut root = etcd.root_client().await.expect("root client");
    root.role_add("reader").await.unwrap();
    root.role_grant_permission("reader", Permission::read_write(KEY))
        .await
        .unwrap();
    root.user_add(USER, "", Some(UserAddOptions::new().with_no_pwd()))
        .await
        .unwrap();
    root.user_grant_role(USER, "reader").await.unwrap();
    let identity = etcd.mint_client(USER).expect("client certificate");
    // A fleet's worth of users, so that each auth change's cache rebuild takes a while (as in a
    // real fleet) and reads that arrive meanwhile wait for it, then find the auth store moved on.
    let users = futures::stream::iter(0..USERS)
        .map(|i| {
            let mut root = root.clone();
            async move {
                let user = format!("fleet-{i}");
                let no_password = Some(UserAddOptions::new().with_no_pwd());
                root.user_add(user.as_str(), "", no_password).await?;
                root.user_grant_role(user.as_str(), "reader").await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(users.iter().all(Result::is_ok), "making the fleet's users");

    let stop = Arc::new(AtomicBool::new(false));
    churn_auth(root.clone(), 8, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // What makes this test able to fail: under the churn, the very read the check makes, sent
    // once with this identity, is refused for having raced an auth change.
    let mut bare = etcd.client_as(&identity).await.expect("identity client");
    let mut raced = 0;
    for _ in 0..200 {
        let read = GetOptions::new().with_keys_only().with_count_only();
        if let Err(e) = bare.get(KEY, Some(read)).await {
            assert!(e.to_string().contains(RACED), "unexpected refusal: {e}");
            raced += 1;
        }
    }
    assert!(
        raced > 0,
        "200 reads under auth churn, none raced: the churn does not churn"
    );

    let probe = Probe {
        etcd_user: USER.into(),
        endpoints: vec![etcd.endpoint(0)],
        ca_pem: etcd.ca().cert_pem.clone(),
        cert_pem: identity.cert_pem.clone(),
        key: PrivateKeyPem::new(identity.key_pem.clone()),
        probe_key: KEY.into(),
    };
    let mut verifier = EtcdVerifier::default();
    for attempt in 0..100 {
        let checked = verifier.verify(&probe).await;
        assert_eq!(checked, Ok(()), "check {attempt} under auth churn");
    }
    stop.store(true, Ordering::Relaxed);

    // And a refusal of another kind still fails the check at once.
    let other = Probe {
        probe_key: "/calico/felix/v1/host/n2/status".into(),
        ..probe
    };
    let refused = verifier
        .verify(&other)
        .await
        .expect_err("another node's key");
    assert!(refused.contains("permission denied"), "{refused}");
}
