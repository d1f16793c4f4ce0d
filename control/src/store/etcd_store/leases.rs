//! Restart leases on etcd. Every lease operation reads the guard key `leases_gen` first and
//! bumps it in its commit, so the count-then-insert of [`acquire`] conflicts with any other
//! lease write in between: the budget holds across replicas.

use time::{Duration, OffsetDateTime};

use super::EtcdStore;
use super::stm::{Tx, atomically};
use crate::store::leases::{check_budget, new_lease};
use crate::store::leases::{expiry as lease_expiry, holder_checked, renewed_expiry};
use crate::store::{LeaseBudget, LeaseRecord, StoreError};

const TABLE: &str = "leases";
/// Expired leases deleted per operation at most, to keep each transaction small (etcd allows
/// 128 operations per transaction by default); the rest go with later operations.
const EXPIRE_AT_ONCE: usize = 64;

/// Reads the guard first, then every lease. Returns the guard's value and the leases.
fn begin(store: &EtcdStore, tx: &mut Tx<'_>) -> Result<(u64, Vec<LeaseRecord>), StoreError> {
    let generation = tx.get("leases_gen", &store.keys.leases_gen())?.unwrap_or(0);
    Ok((generation, tx.scan_guarded(TABLE, &store.keys.leases())?))
}

/// Bumps the guard read by [`begin`]: every transaction that writes a lease must.
fn bump(store: &EtcdStore, tx: &mut Tx<'_>, generation: u64) -> Result<(), StoreError> {
    tx.put(
        "leases_gen",
        &store.keys.leases_gen(),
        &generation.wrapping_add(1),
    )
}

/// Deletes (some of) the leases expired at `now`; returns the live ones, and whether it
/// deleted any.
fn expire(
    store: &EtcdStore,
    tx: &mut Tx<'_>,
    all: Vec<LeaseRecord>,
    now: OffsetDateTime,
) -> (Vec<LeaseRecord>, bool) {
    let (live, expired): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| l.is_live(now));
    for lease in expired.iter().take(EXPIRE_AT_ONCE) {
        tx.delete(&store.keys.lease(&lease.id));
    }
    (live, !expired.is_empty())
}

pub(super) fn acquire(
    store: &EtcdStore,
    node: &str,
    units: &[String],
    now: OffsetDateTime,
    ttl: Duration,
    budget: &LeaseBudget,
) -> Result<LeaseRecord, StoreError> {
    let expires_at = lease_expiry(now, ttl)?;
    atomically(store, "acquiring a restart lease", |tx| {
        let (generation, all) = begin(store, tx)?;
        let taken: Vec<String> = all.iter().map(|l| l.id.clone()).collect();
        let (live, expired_some) = expire(store, tx, all, now);
        if let Some(own) = live.iter().find(|l| l.node == node) {
            if expired_some {
                bump(store, tx, generation)?;
            }
            return Ok(own.clone());
        }
        check_budget(&live, budget, now)?;
        let lease = new_lease(
            &store.rng,
            |id| Ok(taken.iter().any(|t| t == id)),
            node,
            units,
            budget,
            now,
            expires_at,
        )?;
        tx.put(TABLE, &store.keys.lease(&lease.id), &lease)?;
        bump(store, tx, generation)?;
        Ok(lease)
    })
}

/// The lease `id` of `node`, or why not.
fn held(
    store: &EtcdStore,
    tx: &mut Tx<'_>,
    id: &str,
    node: &str,
) -> Result<LeaseRecord, StoreError> {
    holder_checked(tx.get(TABLE, &store.keys.lease(id))?, id, node)
}

pub(super) fn release(
    store: &EtcdStore,
    id: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    atomically(store, "releasing a restart lease", |tx| {
        let (generation, all) = begin(store, tx)?;
        held(store, tx, id, node)?;
        let others = all.into_iter().filter(|l| l.id != id).collect();
        expire(store, tx, others, now);
        tx.delete(&store.keys.lease(id));
        bump(store, tx, generation)
    })
}

pub(super) fn renew(
    store: &EtcdStore,
    id: &str,
    node: &str,
    now: OffsetDateTime,
    ttl: Duration,
    max_life: Duration,
) -> Result<LeaseRecord, StoreError> {
    lease_expiry(now, ttl)?;
    atomically(store, "renewing a restart lease", |tx| {
        let generation = tx.get("leases_gen", &store.keys.leases_gen())?.unwrap_or(0);
        let mut lease = held(store, tx, id, node)?;
        if !lease.is_live(now) {
            return Err(StoreError::UnknownLease { id: id.to_owned() });
        }
        lease.expires_at = renewed_expiry(&lease, now, ttl, max_life)?;
        tx.put(TABLE, &store.keys.lease(id), &lease)?;
        bump(store, tx, generation)?;
        Ok(lease)
    })
}

pub(super) fn live(store: &EtcdStore, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StoreError> {
    let leases: Vec<LeaseRecord> = store.all(TABLE, &store.keys.leases())?;
    Ok(leases.into_iter().filter(|l| l.is_live(now)).collect())
}
