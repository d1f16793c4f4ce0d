//! The harness's etcd: CN-scoped users really are confined to their grants, members can be
//! stopped and started, and nothing outlives the cluster handle.

use calseg_tests::etcd::{EtcdCluster, EtcdOptions};
use etcd_client::{Permission, UserAddOptions};

fn is_permission_denied(error: &etcd_client::Error) -> bool {
    error.to_string().contains("permission denied")
}

#[tokio::test]
async fn cn_scoped_user_writes_its_own_prefix_and_is_denied_elsewhere() {
    let etcd = EtcdCluster::start().await.expect("start etcd");
    let mut root = etcd.root_client().await.expect("root client");
    root.role_add("felix-host1").await.expect("role add");
    root.role_grant_permission(
        "felix-host1",
        Permission::read_write("/calico/felix/v1/host/host1/").with_prefix(),
    )
    .await
    .expect("grant");
    root.user_add(
        "calico-node.host1",
        "",
        Some(UserAddOptions::new().with_no_pwd()),
    )
    .await
    .expect("user add");
    root.user_grant_role("calico-node.host1", "felix-host1")
        .await
        .expect("grant role");

    let identity = etcd.mint_client("calico-node.host1").expect("mint");
    let mut node = etcd.client_as(&identity).await.expect("node client");
    node.put("/calico/felix/v1/host/host1/status", "up", None)
        .await
        .expect("own prefix is writable");
    let denied = node
        .put("/calico/felix/v1/host/host2/status", "up", None)
        .await
        .expect_err("another host's prefix must be denied");
    assert!(is_permission_denied(&denied), "unexpected error: {denied}");

    // A CN etcd has no user for is denied everything, even reads.
    let stranger = etcd.mint_client("nobody").expect("mint");
    let mut stranger = etcd.client_as(&stranger).await.expect("client");
    let denied = stranger
        .get("/calico/felix/v1/host/host1/status", None)
        .await
        .expect_err("unknown user must be denied");
    assert!(is_permission_denied(&denied), "unexpected error: {denied}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let etcd = EtcdCluster::start().await.expect("start etcd");
    let other = calseg_tests::pki::TestCa::new("not trusted by etcd").expect("ca");
    let root_lookalike = other.issue_client("root").expect("mint");
    let result = async {
        let mut client = etcd.client_as(&root_lookalike).await?;
        client.get("/", None).await?;
        anyhow::Ok(())
    }
    .await;
    assert!(
        result.is_err(),
        "etcd accepted a client certificate from an untrusted CA"
    );
}

#[tokio::test]
async fn three_members_keep_serving_with_one_stopped_and_it_rejoins() {
    let mut etcd = EtcdCluster::start_with(EtcdOptions {
        members: 3,
        ..EtcdOptions::default()
    })
    .await
    .expect("start 3 members");
    let pid = etcd.member_pid(2).expect("member 2 runs");
    etcd.stop_member(2);
    assert!(!process_exists(pid), "stopped member {pid} still runs");

    // If the stopped member led, the other two elect a new leader first: allow that time.
    let mut root = etcd.root_client().await.expect("root client");
    let mut last_error = None;
    for _ in 0..100 {
        match root.put("/probe", "while-one-is-down", None).await {
            Ok(_) => {
                last_error = None;
                break;
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        last_error.is_none(),
        "quorum of two refused writes: {last_error:?}"
    );

    etcd.start_member(2).await.expect("restart member 2");
    let mut only_member_2 = etcd_client::Client::connect(
        [etcd.endpoint(2)],
        Some(
            etcd_client::ConnectOptions::new().with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(&etcd.ca().cert_pem))
                    .identity(etcd_client::Identity::from_pem(
                        &etcd.root_identity().cert_pem,
                        &etcd.root_identity().key_pem,
                    )),
            ),
        ),
    )
    .await
    .expect("connect to member 2");
    let mut value = None;
    for _ in 0..50 {
        let response = only_member_2.get("/probe", None).await.expect("get");
        if let Some(kv) = response.kvs().first() {
            value = Some(kv.value_str().expect("utf-8").to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(value.as_deref(), Some("while-one-is-down"));
}

#[test]
fn a_panicking_test_leaves_no_etcd_process_or_directory() {
    let (pid, dir) = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let etcd = runtime.block_on(EtcdCluster::start()).expect("start");
        let seen = (etcd.member_pid(0).expect("runs"), etcd.dir().to_path_buf());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _etcd = etcd;
            panic!("the test fails halfway");
        }));
        assert!(outcome.is_err());
        seen
    })
    .join()
    .expect("thread");
    assert!(
        !process_exists(pid),
        "etcd {pid} outlived the panicking test"
    );
    assert!(
        !dir.exists(),
        "{} outlived the panicking test",
        dir.display()
    );
}

pub fn process_exists(pid: u32) -> bool {
    // A zombie has exited; count it as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}
