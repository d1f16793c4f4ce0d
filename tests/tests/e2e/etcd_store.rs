//! The etcd store against a real etcd with client-certificate auth: the same conformance
//! checks the file store passes, the invariants with two replicas (two clients) racing, the
//! migration round trip file -> etcd -> file, one member of three stopped, calls from plain and
//! `spawn_blocking` threads, and the errors an operator sees.

use std::sync::atomic::{AtomicU32, Ordering};

use calseg_server::rbac::EtcdAccess;
use calseg_server::store::{EtcdStore, RedbStore, Store};
use calseg_testkit::store_conformance::{self as conformance, CHECKS, RACES};
use calseg_tests::etcd::{EtcdCluster, EtcdOptions};
use tokio::runtime::Runtime;

/// A running cluster and the runtime that started it (kept so its clients stay usable).
struct Etcd {
    cluster: EtcdCluster,
    runtime: Runtime,
}

impl Etcd {
    fn start(members: usize) -> Self {
        let runtime = Runtime::new().expect("runtime");
        let options = EtcdOptions {
            members,
            ..EtcdOptions::default()
        };
        let cluster = runtime
            .block_on(EtcdCluster::start_with(options))
            .expect("start etcd (needs the etcd-server package)");
        Self { cluster, runtime }
    }

    /// calseg's access as root, to every member.
    fn access(&self) -> EtcdAccess {
        let files = self.cluster.root_files();
        EtcdAccess {
            endpoints: self.cluster.endpoints(),
            ca_file: files.ca.clone(),
            cert_file: files.cert.clone(),
            key_file: files.key.clone(),
        }
    }

    /// A store on a prefix no other store of this test uses.
    fn fresh(&self) -> EtcdStore {
        EtcdStore::connect(&self.access(), &next_prefix()).expect("connect the etcd store")
    }
}

impl Etcd {
    /// Runs `race` on two stores (two clients, as two replicas) sharing a new prefix.
    fn on_two_replicas(&self, race: conformance::Race) {
        let prefix = next_prefix();
        let a = EtcdStore::connect(&self.access(), &prefix).unwrap();
        let b = EtcdStore::connect(&self.access(), &prefix).unwrap();
        race(&[&a, &b]);
    }
}

fn next_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("/calseg-{}/", NEXT.fetch_add(1, Ordering::SeqCst))
}

#[test]
fn every_conformance_check_passes_on_etcd() {
    let etcd = Etcd::start(1);
    conformance::run(CHECKS, |check| check(&etcd.fresh()));
}

/// Two stores on one prefix are two replicas: each race spreads its threads over both.
#[test]
fn every_race_passes_with_two_replicas() {
    let etcd = Etcd::start(1);
    conformance::run(RACES, |race| etcd.on_two_replicas(*race));
}

/// File -> etcd -> file loses nothing: the three stores export equal snapshots, and the etcd
/// copy goes on where the file stopped (counters, token uses, serials, leases).
#[test]
fn migration_round_trip_file_to_etcd_and_back_loses_nothing() {
    let etcd = Etcd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let source = RedbStore::open(&dir.path().join("source.redb")).unwrap();
    let back = RedbStore::open(&dir.path().join("back.redb")).unwrap();
    let replica = etcd.fresh();
    conformance::populate(&source);
    let original = source.export_snapshot().unwrap();
    let via_etcd = conformance::copy(&source, &replica);
    let returned = conformance::copy(&replica, &back);
    assert_eq!(via_etcd, original);
    assert_eq!(returned, original);

    let (fresh_source, target) = (
        RedbStore::open(&dir.path().join("second.redb")).unwrap(),
        etcd.fresh(),
    );
    conformance::export_then_import_gives_an_equal_store(&fresh_source, &target);
}

/// A failed import leaves its marker; the prefix is then refused rather than served half full.
#[test]
fn an_unfinished_import_is_refused_with_what_to_do() {
    let etcd = Etcd::start(1);
    let prefix = next_prefix();
    let mut root = etcd.runtime.block_on(etcd.cluster.root_client()).unwrap();
    let marker = format!("{prefix}import_in_progress");
    etcd.runtime
        .block_on(root.put(marker.as_str(), "{}", None))
        .unwrap();
    let err = EtcdStore::connect(&etcd.access(), &prefix).unwrap_err();
    assert_eq!(err.kind(), "import_incomplete", "{err}");
    assert!(err.to_string().contains("etcdctl del --prefix"), "{err}");
}

#[test]
fn bad_prefixes_and_an_unreachable_etcd_are_clear_errors() {
    let etcd = Etcd::start(1);
    let err = EtcdStore::connect(&etcd.access(), "calseg").unwrap_err();
    assert_eq!(err.kind(), "invalid_prefix", "{err}");

    let port = calseg_tests::ports::free_port().unwrap();
    let nowhere = EtcdAccess {
        endpoints: vec![format!("https://127.0.0.1:{port}")],
        ..etcd.access()
    };
    let err = EtcdStore::connect(&nowhere, "/calseg/").unwrap_err();
    assert_eq!(err.kind(), "store_unavailable", "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

/// With one member of three stopped, every operation still works through the other two.
#[test]
fn the_store_keeps_working_with_one_member_of_three_stopped() {
    let mut etcd = Etcd::start(3);
    let prefix = next_prefix();
    let before = EtcdStore::connect(&etcd.access(), &prefix).unwrap();
    conformance::populate(&before);
    etcd.cluster.stop_member(0);
    let after = EtcdStore::connect(&etcd.access(), &next_prefix()).unwrap();
    conformance::copy(&before, &after);
    conformance::run(RACES, |race| etcd.on_two_replicas(*race));
}

/// The store runs its requests on its own runtime: it works from a plain thread, from a
/// `spawn_blocking` thread of another runtime, and may be dropped on an async task.
#[test]
fn the_store_works_from_plain_threads_and_from_spawn_blocking() {
    let etcd = Etcd::start(1);
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(etcd.fresh());
    let s = std::sync::Arc::clone(&store);
    let seq = std::thread::spawn(move || s.record_policy("aa", conformance::t0()))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(seq, 1);

    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = std::sync::Arc::clone(&store);
    let seq = other
        .block_on(async move {
            tokio::task::spawn_blocking(move || s.record_policy("bb", conformance::t0())).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(seq, 2);
    // The last reference goes away on an async worker thread: no blocking shutdown there.
    other.block_on(async move {
        tokio::spawn(async move { drop(store) }).await.unwrap();
    });
}

/// The keys and values under the prefix are those earlier versions wrote and read (so a
/// prefix written before still reads): the layout, the guards and counters, the per-node
/// copies of certificates, the pending index, and the value forms.
#[test]
fn the_keys_and_values_in_etcd_are_those_of_earlier_versions() {
    let etcd = Etcd::start(1);
    let prefix = next_prefix();
    let store = EtcdStore::connect(&etcd.access(), &prefix).unwrap();
    conformance::populate(&store);
    let mut root = etcd.runtime.block_on(etcd.cluster.root_client()).unwrap();
    let options = etcd_client::GetOptions::new().with_prefix();
    let response = etcd
        .runtime
        .block_on(root.get(prefix.as_str(), Some(options)))
        .unwrap();
    let stored: std::collections::BTreeMap<String, String> = response
        .kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().unwrap().strip_prefix(&prefix).unwrap();
            (key.to_owned(), kv.value_str().unwrap().to_owned())
        })
        .collect();
    // Token and lease ids are random: keep their kind only.
    let mut keys: Vec<String> = stored
        .keys()
        .map(|k| match k.split_once('/') {
            Some((kind @ ("tokens" | "leases"), _)) => format!("{kind}/*"),
            _ => k.clone(),
        })
        .collect();
    keys.dedup();
    let n = |k: &str, seq: u64| format!("{k}/{seq:020}");
    let mut expected: Vec<String> = vec![
        n("audit", 1),
        n("audit", 2),
        n("audit", 3),
        "audit_seq".into(),
        // Added with CA rotations: one key, beside `rollout`.
        "ca_rotation".into(),
        "issued/0a".into(),
        "issued/0b".into(),
        "issued/1c".into(),
        "issued_by_node/w-1/0a".into(),
        "issued_by_node/w-1/0b".into(),
        "issued_by_node/w-2/1c".into(),
        "leases/*".into(),
        "leases_gen".into(),
        "nodes/d-1".into(),
        "nodes/p-1".into(),
        "nodes/w-1".into(),
        "nodes/w-2".into(),
        "pending/p-1".into(),
        "pending_gen".into(),
        "policy/head".into(),
        n("policy/revisions", 1),
        n("policy/revisions", 2),
        n("policy/texts", 1),
        n("policy/texts", 2),
        "rollout".into(),
        "tokens/*".into(),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(stored["audit_seq"], "3");
    assert_eq!(
        stored["pending_gen"], "2",
        "bumped by each new pending node"
    );
    assert_eq!(stored["leases_gen"], "2", "bumped by each lease written");
    assert_eq!(stored["issued_by_node/w-1/0b"], stored["issued/0b"]);
    assert_eq!(stored["policy/head"], stored[&n("policy/revisions", 2)]);
    let text: serde_json::Value = serde_json::from_str(&stored[&n("policy/texts", 2)]).unwrap();
    assert_eq!(text, serde_json::json!({"revision": 2, "text": "two"}));
    let pending: serde_json::Value = serde_json::from_str(&stored["pending/p-1"]).unwrap();
    assert_eq!(pending["name"], "p-1");
    assert!(pending["first_seen"].is_i64(), "{pending}");
}
