//! What etcd itself does not enforce, shown on whichever etcd the harness runs (Debian's 3.4,
//! or `CALSEG_ETCD_BIN_DIR=$(scripts/etcd35.sh)` for 3.5). calseg's isolation is etcd's RBAC;
//! these tests state where that RBAC ends, so docs/security.md ("What etcd does not enforce")
//! can name a test for every claim, and so a release that changes the behaviour fails here.

use calseg_tests::etcd::{EtcdCluster, EtcdOptions};
use calseg_tests::pki::KeyedCert;
use etcd_client::{Client, EventType, Permission, UserAddOptions, WatchOptions, WatchStream};
use std::time::Duration;

/// How long a watch may take to be created or to deliver an event.
const WATCH_WAIT: Duration = Duration::from_secs(5);

/// Creates user `user` (no password: it authenticates by certificate CN) holding a new role
/// `role` with read on the prefix `prefix`, and returns a certificate for it.
async fn reader_of(
    etcd: &EtcdCluster,
    root: &mut Client,
    user: &str,
    role: &str,
    prefix: &str,
) -> KeyedCert {
    root.role_add(role).await.expect("role add");
    root.role_grant_permission(role, Permission::read(prefix).with_prefix())
        .await
        .expect("grant read");
    root.user_add(user, "", Some(UserAddOptions::new().with_no_pwd()))
        .await
        .expect("user add");
    root.user_grant_role(user, role).await.expect("grant role");
    etcd.mint_client(user).expect("mint")
}

/// Opens a watch and waits for etcd's answer to its creation: the stream when etcd created it,
/// or etcd's reason when it refused (cancelled) it.
async fn open_watch(
    client: &mut Client,
    key: &str,
    options: WatchOptions,
) -> Result<WatchStream, String> {
    let mut stream = client
        .watch(key, Some(options))
        .await
        .map_err(|error| error.to_string())?;
    let first = tokio::time::timeout(WATCH_WAIT, stream.message())
        .await
        .map_err(|_| format!("no answer to the watch's creation in {WATCH_WAIT:?}"))?
        .map_err(|error| error.to_string())?
        .ok_or("the watch stream ended before its creation was answered")?;
    if first.canceled() {
        return Err(format!("cancelled: {:?}", first.cancel_reason()));
    }
    assert!(
        first.created(),
        "first watch response is not the creation: {first:?}"
    );
    Ok(stream)
}

/// The first PUT the stream delivers within `wait`, as (key, value); `None` when none comes
/// (or the watch is cancelled or ends).
async fn next_put(stream: &mut WatchStream, wait: Duration) -> Option<(String, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    // Bounded: each round either returns or consumes one response before the deadline.
    while let Ok(Ok(Some(response))) = tokio::time::timeout_at(deadline, stream.message()).await {
        if response.canceled() {
            return None;
        }
        if let Some(kv) = response
            .events()
            .iter()
            .filter(|event| event.event_type() == EventType::Put)
            .find_map(|event| event.kv())
        {
            return Some((
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            ));
        }
    }
    None
}

/// (major, minor, patch) of a version string such as `3.5.16`.
fn parse_version(version: &str) -> (u64, u64, u64) {
    let mut parts = version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// True when etcd `version` has the fix for GHSA-xg4h-6gfc-h4m8 (3.5.33, 3.6.14, 3.7.1 and
/// later; no 3.4 release has it).
fn from_key_watch_fixed(version: &str) -> bool {
    match parse_version(version) {
        (3, 5, patch) => patch >= 33,
        (3, 6, patch) => patch >= 14,
        (3, 7, patch) => patch >= 1,
        (3, minor, _) => minor >= 8,
        (major, _, _) => major > 3,
    }
}

#[test]
fn the_from_key_watch_fix_is_known_by_release() {
    for affected in [
        "3.4.23", "3.4.99", "3.5.16", "3.5.32", "3.6.13", "3.7.0", "2.3.8",
    ] {
        assert!(!from_key_watch_fixed(affected), "{affected}");
    }
    for fixed in [
        "3.5.33", "3.5.40", "3.6.14", "3.7.1", "3.8.0", "4.0.0", "v3.6.14",
    ] {
        assert!(from_key_watch_fixed(fixed), "{fixed}");
    }
}

/// GHSA-xg4h-6gfc-h4m8: an identity whose only grant is read on the IP pools' prefix opens a
/// watch from that key with range_end "\x00" (every key from there on) and receives a PUT on a
/// Kubernetes secret's key. Affected releases deliver it (3.4.23 and 3.5.16 included); fixed
/// ones (3.5.33, 3.6.14, 3.7.1) refuse the watch.
#[tokio::test]
async fn ghsa_xg4h_6gfc_h4m8_from_key_watch_escapes_a_read_grant_unless_fixed() {
    const POOLS: &str = "/calico/resources/v3/projectcalico.org/ippools/";
    const SECRET: &str = "/registry/secrets/default/db-password";
    let etcd = EtcdCluster::start().await.expect("start etcd");
    let version = etcd.server_version().await.expect("etcd status");
    let fixed = from_key_watch_fixed(&version);
    println!("etcd {version}: GHSA-xg4h-6gfc-h4m8 fixed: {fixed}");
    let mut root = etcd.root_client().await.expect("root client");
    let identity = reader_of(&etcd, &mut root, "pools.reader", "limits.pools", POOLS).await;
    let mut reader = etcd.client_as(&identity).await.expect("reader client");

    // The grant is narrow: the secret is not readable, and a prefix watch on it is refused...
    root.put(SECRET, "before", None).await.expect("put secret");
    let denied = reader
        .get(SECRET, None)
        .await
        .expect_err("a read of the secret must be denied");
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    let refused = open_watch(&mut reader, "/registry/", WatchOptions::new().with_prefix()).await;
    assert!(
        refused.is_err(),
        "a prefix watch outside the grant was created"
    );

    // ...but a watch from the granted key to the end of the keyspace:
    let watch = open_watch(&mut reader, POOLS, WatchOptions::new().with_range("\0")).await;
    root.put(SECRET, "hunter2", None).await.expect("put secret");
    let delivered = match watch {
        Ok(mut stream) => next_put(&mut stream, WATCH_WAIT).await,
        Err(reason) => {
            println!("etcd {version} refused the from-key watch: {reason}");
            None
        }
    };
    if fixed {
        assert_eq!(
            delivered, None,
            "etcd {version} has the fix for GHSA-xg4h-6gfc-h4m8 but delivered the secret's PUT"
        );
    } else {
        assert_eq!(
            delivered,
            Some((SECRET.to_owned(), "hunter2".to_owned())),
            "etcd {version} is affected by GHSA-xg4h-6gfc-h4m8 (fixed in 3.5.33, 3.6.14, \
             3.7.1), yet the from-key watch did not deliver the secret's PUT: if this release \
             has the fix, add it to from_key_watch_fixed and to docs/security.md"
        );
    }
}

/// etcd authorizes a watch when it is created, never again: after the watcher's user is
/// deleted, or the role that granted the read, its new requests and new watches are refused,
/// but the watches it opened before keep delivering events.
#[tokio::test]
async fn a_watch_opened_before_revocation_keeps_delivering_events() {
    const PREFIX: &str = "/calico/felix/v1/";
    const KEY: &str = "/calico/felix/v1/host/node1/status";
    let etcd = EtcdCluster::start().await.expect("start etcd");
    let version = etcd.server_version().await.expect("etcd status");
    let mut root = etcd.root_client().await.expect("root client");
    let by_user = reader_of(&etcd, &mut root, "watch.user", "limits.user", PREFIX).await;
    let by_role = reader_of(&etcd, &mut root, "watch.role", "limits.role", PREFIX).await;
    let mut user_client = etcd.client_as(&by_user).await.expect("client");
    let mut role_client = etcd.client_as(&by_role).await.expect("client");
    let prefix = || WatchOptions::new().with_prefix();
    let mut user_watch = open_watch(&mut user_client, PREFIX, prefix())
        .await
        .expect("watch within the grant");
    let mut role_watch = open_watch(&mut role_client, PREFIX, prefix())
        .await
        .expect("watch within the grant");
    root.put(KEY, "one", None).await.expect("put");
    assert_eq!(
        next_put(&mut user_watch, WATCH_WAIT).await,
        Some((KEY.to_owned(), "one".to_owned()))
    );
    assert_eq!(
        next_put(&mut role_watch, WATCH_WAIT).await,
        Some((KEY.to_owned(), "one".to_owned()))
    );

    // Revoke: delete one identity's user, and the other's role.
    root.user_delete("watch.user").await.expect("user delete");
    root.role_delete("limits.role").await.expect("role delete");

    // New requests are checked and refused...
    for (name, client) in [("user", &mut user_client), ("role", &mut role_client)] {
        let error = client
            .get(KEY, None)
            .await
            .expect_err("a read after revocation must be refused");
        println!("etcd {version}: read after the {name} was deleted: {error}");
        let refused = open_watch(client, PREFIX, prefix()).await;
        assert!(
            refused.is_err(),
            "a new watch after the {name} was deleted was created"
        );
    }

    // ...the watches opened before are not.
    root.put(KEY, "two", None).await.expect("put");
    assert_eq!(
        next_put(&mut user_watch, WATCH_WAIT).await,
        Some((KEY.to_owned(), "two".to_owned())),
        "etcd {version}: the watch of a deleted user stopped delivering; if etcd now \
         re-checks watches, update docs/security.md"
    );
    assert_eq!(
        next_put(&mut role_watch, WATCH_WAIT).await,
        Some((KEY.to_owned(), "two".to_owned())),
        "etcd {version}: the watch of a deleted role stopped delivering; if etcd now \
         re-checks watches, update docs/security.md"
    );
}

/// A certificate that is listed on a CRL of its CA authenticates anyway when etcd runs without
/// `--client-crl-file`: etcd does no revocation check of its own.
#[tokio::test]
async fn a_revoked_certificate_authenticates_without_client_crl_file() {
    let etcd = EtcdCluster::start().await.expect("start etcd");
    let version = etcd.server_version().await.expect("etcd status");
    let mut root = etcd.root_client().await.expect("root client");
    root.put("/calico/ipam/v2/x", "v", None).await.expect("put");
    let revoked = reader_of(&etcd, &mut root, "revoked", "limits.crl", "/calico/").await;
    etcd.write_client_crl(&[&revoked]).expect("write CRL");

    let mut client = etcd.client_as(&revoked).await.expect("client");
    let read = client
        .get("/calico/ipam/v2/x", None)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "etcd {version} without --client-crl-file refused a revoked certificate: \
                 {error}; if etcd now checks revocation itself, update docs/security.md"
            )
        });
    assert_eq!(read.kvs().len(), 1);
}

/// With `--client-crl-file`, the same kind of certificate is refused at the TLS handshake, while
/// a certificate not on the CRL keeps working. etcd reads the file at every new connection;
/// connections opened before the certificate was listed stay open.
#[tokio::test]
async fn a_revoked_certificate_is_refused_with_client_crl_file() {
    let etcd = EtcdCluster::start_with(EtcdOptions {
        members: 1,
        client_crl: true,
        ..EtcdOptions::default()
    })
    .await
    .expect("start etcd with --client-crl-file");
    let version = etcd.server_version().await.expect("etcd status");
    let mut root = etcd.root_client().await.expect("root client");
    root.put("/calico/ipam/v2/x", "v", None).await.expect("put");
    let revoked = reader_of(&etcd, &mut root, "revoked", "limits.crl", "/calico/").await;
    let kept = reader_of(&etcd, &mut root, "kept", "limits.kept", "/calico/").await;
    let mut before = etcd.client_as(&revoked).await.expect("client");
    before
        .get("/calico/ipam/v2/x", None)
        .await
        .expect("not revoked yet: reads");

    etcd.write_client_crl(&[&revoked]).expect("write CRL");

    let refused = async {
        let mut client = etcd.client_as(&revoked).await?;
        client.get("/calico/ipam/v2/x", None).await?;
        anyhow::Ok(())
    }
    .await;
    println!(
        "etcd {version} with --client-crl-file, a new connection with a revoked certificate: {refused:?}"
    );
    assert!(
        refused.is_err(),
        "etcd {version} with --client-crl-file accepted a certificate its CRL lists"
    );
    let mut other = etcd.client_as(&kept).await.expect("client");
    other
        .get("/calico/ipam/v2/x", None)
        .await
        .expect("a certificate not on the CRL still reads");
    let still = before.get("/calico/ipam/v2/x", None).await;
    println!(
        "etcd {version}: the revoked certificate's connection opened before: {:?}",
        still.as_ref().map(|r| r.kvs().len())
    );
    assert!(
        still.is_ok(),
        "etcd {version} closed a connection opened before its certificate was listed: update \
         docs/security.md"
    );
}
