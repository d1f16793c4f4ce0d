//! Restart leases: the budget, one lease per node, expiry, release and renewal, and the budget
//! under concurrent acquisitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use time::Duration;

use super::{fresh, t0};
use crate::store::{GroupBudget, LeaseBudget, Store, StoreError};

fn fleet(limit: u32) -> LeaseBudget {
    LeaseBudget {
        fleet_limit: limit,
        group: None,
    }
}

fn units() -> Vec<String> {
    vec!["calico-node.service".to_owned()]
}

const TTL: Duration = Duration::seconds(120);

#[test]
fn the_budget_refuses_one_more_and_a_retry_gets_the_same_lease() {
    let (_dir, store) = fresh();
    let store: &dyn Store = &store;
    let a = store
        .acquire_lease("a", &units(), t0(), TTL, &fleet(2))
        .unwrap();
    let b = store
        .acquire_lease("b", &units(), t0(), TTL, &fleet(2))
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.expires_at, t0() + TTL);
    let again = store.acquire_lease("a", &units(), t0() + Duration::seconds(5), TTL, &fleet(2));
    assert_eq!(
        again.unwrap(),
        a,
        "a retry returns the live lease unchanged"
    );
    match store.acquire_lease("c", &units(), t0(), TTL, &fleet(2)) {
        Err(StoreError::BudgetFull {
            held,
            limit,
            retry_after_hint,
            ..
        }) => {
            assert_eq!((held, limit), (2, 2));
            assert_eq!(retry_after_hint.as_secs(), 120);
        }
        other => panic!("{other:?}"),
    }
    store.release_lease(&a.id, "a", t0()).unwrap();
    let c = store
        .acquire_lease("c", &units(), t0(), TTL, &fleet(2))
        .unwrap();
    let live: Vec<String> = store
        .live_leases(t0())
        .unwrap()
        .into_iter()
        .map(|l| l.node)
        .collect();
    let mut sorted = live.clone();
    sorted.sort();
    assert_eq!(sorted, ["b", "c"]);
    assert_eq!(c.node, "c");
}

#[test]
fn an_expired_lease_does_not_count_and_cannot_be_renewed() {
    let (_dir, store) = fresh();
    let store: &dyn Store = &store;
    let dead = store
        .acquire_lease("dead", &units(), t0(), TTL, &fleet(1))
        .unwrap();
    let before = t0() + Duration::seconds(119);
    assert!(matches!(
        store.acquire_lease("b", &units(), before, TTL, &fleet(1)),
        Err(StoreError::BudgetFull { .. })
    ));
    let after = t0() + TTL;
    assert!(
        store.live_leases(after).unwrap().is_empty(),
        "expires_at is exclusive"
    );
    let b = store
        .acquire_lease("b", &units(), after, TTL, &fleet(1))
        .unwrap();
    assert_eq!(b.node, "b");
    assert!(matches!(
        store.renew_lease(&dead.id, "dead", after, TTL),
        Err(StoreError::UnknownLease { .. })
    ));
}

#[test]
fn only_the_holder_may_release_or_renew() {
    let (_dir, store) = fresh();
    let store: &dyn Store = &store;
    let a = store
        .acquire_lease("a", &units(), t0(), TTL, &fleet(1))
        .unwrap();
    assert!(matches!(
        store.release_lease(&a.id, "b", t0()),
        Err(StoreError::LeaseNotHeld { .. })
    ));
    assert!(matches!(
        store.renew_lease(&a.id, "b", t0(), TTL),
        Err(StoreError::LeaseNotHeld { .. })
    ));
    let later = t0() + Duration::seconds(100);
    let renewed = store.renew_lease(&a.id, "a", later, TTL).unwrap();
    assert_eq!(renewed.expires_at, later + TTL);
    assert_eq!(
        store
            .live_leases(t0() + Duration::seconds(150))
            .unwrap()
            .len(),
        1
    );
    store.release_lease(&a.id, "a", later).unwrap();
    assert!(matches!(
        store.release_lease(&a.id, "a", later),
        Err(StoreError::UnknownLease { .. })
    ));
    assert!(store.live_leases(later).unwrap().is_empty());
}

#[test]
fn a_host_group_has_its_own_limit_inside_the_fleet_budget() {
    let (_dir, store) = fresh();
    let store: &dyn Store = &store;
    let group = |name: &str| LeaseBudget {
        fleet_limit: 3,
        group: Some(GroupBudget {
            group: name.into(),
            limit: 1,
        }),
    };
    store
        .acquire_lease("gw1", &units(), t0(), TTL, &group("hosts[1]"))
        .unwrap();
    match store.acquire_lease("gw2", &units(), t0(), TTL, &group("hosts[1]")) {
        Err(StoreError::BudgetFull { scope, .. }) => assert_eq!(scope, "host group hosts[1]"),
        other => panic!("{other:?}"),
    }
    store
        .acquire_lease("w1", &units(), t0(), TTL, &group("hosts[0]"))
        .unwrap();
    store
        .acquire_lease("w2", &units(), t0(), TTL, &fleet(3))
        .unwrap();
    match store.acquire_lease("w3", &units(), t0(), TTL, &fleet(3)) {
        Err(StoreError::BudgetFull { scope, held, .. }) => {
            assert_eq!((scope.as_str(), held), ("the fleet", 3));
        }
        other => panic!("{other:?}"),
    }
}

/// 20 nodes acquire, hold briefly and release, all at once: the number of holders never
/// exceeds the budget. A holder counts itself only between grant and release, a sub-interval
/// of the store's own lease, so a count above 3 here means the store granted too many.
#[test]
fn concurrent_acquisitions_never_exceed_the_budget() {
    let (_dir, store) = fresh();
    let store = Arc::new(store);
    let holders = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let grants = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (store, holders, peak, grants) = (
                Arc::clone(&store),
                Arc::clone(&holders),
                Arc::clone(&peak),
                Arc::clone(&grants),
            );
            std::thread::spawn(move || {
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
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} holders at once");
    assert!(grants.load(Ordering::SeqCst) >= 3, "the budget was used");
    assert!(store.live_leases(t0()).unwrap().is_empty());
}
