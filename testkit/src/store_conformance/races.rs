//! The invariants under concurrency: many threads spread over one or more store instances
//! (replicas sharing one backend) race for the same token, serials, audit numbers and restart
//! budget. Every check counts outcomes, never time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use super::leases::{TTL, fleet, units};
use super::nodes::cert;
use super::records::entry;
use super::{match_token, node_token, t0};
use calseg_server::store::{AuditAction, Store, StoreError};

/// Runs `f(store, i)` for `i` in `0..threads` at once, thread `i` on `replicas[i % len]`.
fn race<T: Send>(
    replicas: &[&dyn Store],
    threads: usize,
    f: impl Fn(&dyn Store, usize) -> T + Sync,
) -> Vec<T> {
    assert!(!replicas.is_empty());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (store, f) = (replicas[i % replicas.len()], &f);
                scope.spawn(move || f(store, i))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

pub fn concurrent_redeems_of_a_three_use_token_succeed_exactly_three_times(
    replicas: &[&dyn Store],
) {
    let tok = match_token(replicas[0], "worker-*", 3);
    let results = race(replicas, 20, |store, i| {
        store.redeem_token(&tok.token, &format!("worker-{i}"), t0())
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), "token_exhausted", "{e}");
    }
    for store in replicas {
        assert_eq!(store.list_tokens().unwrap()[0].uses.len(), 3);
        assert_eq!(store.nodes().unwrap().len(), 3);
    }
}

/// 200 recordings of 50 serials from 8 threads: each serial is stored once, for one node.
pub fn concurrent_recordings_store_each_serial_once(replicas: &[&dyn Store]) {
    let nodes = ["n0", "n1", "n2", "n3"];
    for n in nodes {
        let tok = node_token(replicas[0], n);
        replicas[0].redeem_token(&tok.token, n, t0()).unwrap();
    }
    let results = race(replicas, 8, |store, i| {
        (0..25)
            .map(|k| {
                let serial = format!("{:02x}", (i * 25 + k) % 50);
                store.record_issued(cert(&serial, nodes[i % 4], "calico-node"))
            })
            .collect::<Vec<_>>()
    });
    let results: Vec<_> = results.into_iter().flatten().collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 50);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), "duplicate_serial", "{e}");
    }
    let mut stored = Vec::new();
    for n in nodes {
        stored.extend(
            replicas[0]
                .issued_for_node(n)
                .unwrap()
                .into_iter()
                .map(|c| c.serial),
        );
    }
    let distinct: BTreeSet<_> = stored.iter().collect();
    assert_eq!((stored.len(), distinct.len()), (50, 50), "{stored:?}");
}

/// 8 threads append 20 entries each: the numbers are exactly 1..=160, each once.
pub fn concurrent_audit_appends_get_dense_unique_numbers(replicas: &[&dyn Store]) {
    let seqs = race(replicas, 8, |store, i| {
        (0..20)
            .map(|k| {
                let subject = format!("t{i}-{k}");
                store
                    .append_audit(entry(AuditAction::Report, &subject))
                    .unwrap()
            })
            .collect::<Vec<_>>()
    });
    let mut seqs: Vec<u64> = seqs.into_iter().flatten().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=160).collect::<Vec<u64>>());
    let log = replicas[replicas.len() - 1].audit(0, 1000).unwrap();
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=160).collect::<Vec<u64>>()
    );
    let subjects: BTreeSet<_> = log.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects.len(), 160, "every append is in the log once");
}

/// 30 nodes ask at once for a budget of 2 and keep what they get: exactly 2 are granted.
pub fn a_burst_of_acquisitions_grants_exactly_the_budget(replicas: &[&dyn Store]) {
    let results = race(replicas, 30, |store, i| {
        store.acquire_lease(&format!("n{i}"), &units(), t0(), TTL, &fleet(2))
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), "restart_budget_full", "{e}");
    }
    for store in replicas {
        assert_eq!(store.live_leases(t0()).unwrap().len(), 2);
    }
}

/// 20 nodes acquire, hold briefly and release, all at once: the number of holders never
/// exceeds the budget. A holder counts itself only between grant and release, a sub-interval
/// of the store's own lease, so a count above 3 here means the store granted too many.
pub fn concurrent_acquisitions_never_exceed_the_budget(replicas: &[&dyn Store]) {
    let holders = AtomicU32::new(0);
    let peak = AtomicU32::new(0);
    let grants = AtomicU32::new(0);
    race(replicas, 20, |store, i| {
        let node = format!("n{i}");
        for _ in 0..15 {
            match store.acquire_lease(&node, &units(), t0(), TTL, &fleet(3)) {
                Ok(lease) => {
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    grants.fetch_add(1, Ordering::SeqCst);
                    let live = store.live_leases(t0()).unwrap().len();
                    assert!(live <= 3, "{live} live leases");
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    holders.fetch_sub(1, Ordering::SeqCst);
                    store.release_lease(&lease.id, &node, t0()).unwrap();
                }
                Err(StoreError::BudgetFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} holders at once");
    assert!(grants.load(Ordering::SeqCst) >= 3, "the budget was used");
    assert!(replicas[0].live_leases(t0()).unwrap().is_empty());
}

/// 20 new names ask at once against a cap of 5 (issue 17, finding 8): exactly 5 are recorded
/// as pending, the others are refused with `TooManyPending`.
pub fn concurrent_new_pending_requests_never_exceed_the_cap(replicas: &[&dyn Store]) {
    let results = race(replicas, 20, |store, i| {
        let ask = calseg_server::store::PendingAsk {
            max_pending: 5,
            ..super::ask("CSR", &format!("sha256:{i}"))
        };
        store.upsert_pending_node(&format!("flood-{i}"), &ask, t0())
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), "too_many_pending", "{e}");
    }
    for store in replicas {
        assert_eq!(store.nodes().unwrap().len(), 5);
    }
}
