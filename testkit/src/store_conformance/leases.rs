//! Restart leases: the budget, one lease per node, expiry, release and renewal.

use time::Duration;

use super::t0;
use calseg_server::store::{GroupBudget, LeaseBudget, Store, StoreError};

pub(super) fn fleet(limit: u32) -> LeaseBudget {
    LeaseBudget {
        fleet_limit: limit,
        group: None,
    }
}

pub(super) fn units() -> Vec<String> {
    vec!["calico-node.service".to_owned()]
}

pub(super) const TTL: Duration = Duration::seconds(120);
/// The longest a lease may live in these tests: ten TTLs, the policy's default.
pub(super) const LIFE: Duration = Duration::seconds(1200);

pub fn the_budget_refuses_one_more_and_a_retry_gets_the_same_lease(store: &dyn Store) {
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

pub fn an_expired_lease_does_not_count_and_cannot_be_renewed(store: &dyn Store) {
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
        store.renew_lease(&dead.id, "dead", after, TTL, LIFE),
        Err(StoreError::UnknownLease { .. })
    ));
}

pub fn only_the_holder_may_release_or_renew(store: &dyn Store) {
    let a = store
        .acquire_lease("a", &units(), t0(), TTL, &fleet(1))
        .unwrap();
    assert!(matches!(
        store.release_lease(&a.id, "b", t0()),
        Err(StoreError::LeaseNotHeld { .. })
    ));
    assert!(matches!(
        store.renew_lease(&a.id, "b", t0(), TTL, LIFE),
        Err(StoreError::LeaseNotHeld { .. })
    ));
    let later = t0() + Duration::seconds(100);
    let renewed = store.renew_lease(&a.id, "a", later, TTL, LIFE).unwrap();
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

pub fn a_host_group_has_its_own_limit_inside_the_fleet_budget(store: &dyn Store) {
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

pub fn a_lease_is_never_renewed_past_its_longest_life(store: &dyn Store) {
    let life = Duration::seconds(300);
    let at = |s: i64| t0() + Duration::seconds(s);
    let a = store
        .acquire_lease("a", &units(), t0(), TTL, &fleet(1))
        .unwrap();
    let renewed = store.renew_lease(&a.id, "a", at(100), TTL, life).unwrap();
    assert_eq!(renewed.expires_at, at(220));
    let capped = store.renew_lease(&a.id, "a", at(200), TTL, life).unwrap();
    assert_eq!(
        capped.expires_at,
        at(300),
        "cut to the grant + max_lease_life"
    );
    match store.renew_lease(&a.id, "a", at(250), TTL, life) {
        Err(StoreError::LeaseLifeExceeded {
            max_life_secs,
            ends_at,
            ..
        }) => assert_eq!((max_life_secs, ends_at), (300, at(300).unix_timestamp())),
        other => panic!("{other:?}"),
    }
    // The refusal changed nothing: the lease still ends at its cap, and holds the budget
    // until then.
    let live = store.live_leases(at(299)).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].expires_at, at(300));
    assert!(matches!(
        store.acquire_lease("b", &units(), at(299), TTL, &fleet(1)),
        Err(StoreError::BudgetFull { .. })
    ));
    // Then it ends by itself and another node gets the slot.
    let b = store
        .acquire_lease("b", &units(), at(300), TTL, &fleet(1))
        .unwrap();
    assert_eq!(b.node, "b");
    assert!(matches!(
        store.renew_lease(&a.id, "a", at(300), TTL, life),
        Err(StoreError::UnknownLease { .. })
    ));
}
