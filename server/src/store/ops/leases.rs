//! Restart leases. Every lease operation reads the guard `leases_gen` first and bumps it in
//! its commit, so the count-then-insert of [`acquire`] conflicts with any other lease write in
//! between: the budget holds across etcd replicas (and redb has one writer at a time).

use ring::rand::SystemRandom;
use time::{Duration, OffsetDateTime};

use crate::store::kv::{self, Key, Kv, Space, Txn};
use crate::store::leases::{check_budget, new_lease};
use crate::store::leases::{expiry as lease_expiry, holder_checked, renewed_expiry};
use crate::store::{LeaseBudget, LeaseRecord, StoreError};

/// Expired leases deleted per operation at most, to keep each transaction small (etcd allows
/// 128 operations per transaction by default); the rest go with later operations.
const EXPIRE_AT_ONCE: usize = 64;

/// Reads the guard first, then every lease. Returns the guard's value and the leases.
fn begin(tx: &mut dyn Txn) -> Result<(u64, Vec<LeaseRecord>), StoreError> {
    let generation = kv::get(tx, Space::LeasesGen, Key::One)?.unwrap_or(0);
    Ok((generation, kv::scan(tx, Space::Leases, None)?))
}

/// Bumps the guard read by [`begin`]: every transaction that writes a lease must.
fn bump(tx: &mut dyn Txn, generation: u64) -> Result<(), StoreError> {
    kv::put(tx, Space::LeasesGen, Key::One, &generation.wrapping_add(1))
}

/// Deletes (some of) the leases expired at `now`; returns the live ones, and whether it
/// deleted any.
fn expire(
    tx: &mut dyn Txn,
    all: Vec<LeaseRecord>,
    now: OffsetDateTime,
) -> Result<(Vec<LeaseRecord>, bool), StoreError> {
    let (live, expired): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| l.is_live(now));
    for lease in expired.iter().take(EXPIRE_AT_ONCE) {
        tx.delete(Space::Leases, Key::name(&lease.id))?;
    }
    Ok((live, !expired.is_empty()))
}

pub(super) fn acquire(
    store: &impl Kv,
    node: &str,
    units: &[String],
    now: OffsetDateTime,
    ttl: Duration,
    budget: &LeaseBudget,
) -> Result<LeaseRecord, StoreError> {
    let expires_at = lease_expiry(now, ttl)?;
    let rng = SystemRandom::new();
    store.write("acquiring a restart lease", |tx| {
        let (generation, all) = begin(tx)?;
        let taken: Vec<String> = all.iter().map(|l| l.id.clone()).collect();
        let (live, expired_some) = expire(tx, all, now)?;
        if let Some(own) = live.iter().find(|l| l.node == node) {
            if expired_some {
                bump(tx, generation)?;
            }
            return Ok(own.clone());
        }
        check_budget(&live, budget, now)?;
        let lease = new_lease(
            &rng,
            |id| Ok(taken.iter().any(|t| t == id)),
            node,
            units,
            budget,
            now,
            expires_at,
        )?;
        kv::put(tx, Space::Leases, Key::name(&lease.id), &lease)?;
        bump(tx, generation)?;
        Ok(lease)
    })
}

/// The lease `id` of `node`, or why not.
fn held(tx: &mut dyn Txn, id: &str, node: &str) -> Result<LeaseRecord, StoreError> {
    holder_checked(kv::get(tx, Space::Leases, Key::name(id))?, id, node)
}

pub(super) fn release(
    store: &impl Kv,
    id: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    store.write("releasing a restart lease", |tx| {
        let (generation, all) = begin(tx)?;
        held(tx, id, node)?;
        let others = all.into_iter().filter(|l| l.id != id).collect();
        expire(tx, others, now)?;
        tx.delete(Space::Leases, Key::name(id))?;
        bump(tx, generation)
    })
}

pub(super) fn renew(
    store: &impl Kv,
    id: &str,
    node: &str,
    now: OffsetDateTime,
    ttl: Duration,
    max_life: Duration,
) -> Result<LeaseRecord, StoreError> {
    lease_expiry(now, ttl)?;
    store.write("renewing a restart lease", |tx| {
        let generation = kv::get(tx, Space::LeasesGen, Key::One)?.unwrap_or(0);
        let mut lease = held(tx, id, node)?;
        if !lease.is_live(now) {
            return Err(StoreError::UnknownLease { id: id.to_owned() });
        }
        lease.expires_at = renewed_expiry(&lease, now, ttl, max_life)?;
        kv::put(tx, Space::Leases, Key::name(id), &lease)?;
        bump(tx, generation)?;
        Ok(lease)
    })
}

pub(super) fn live(store: &impl Kv, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StoreError> {
    let leases: Vec<LeaseRecord> =
        store.read("reading leases", |tx| kv::scan(tx, Space::Leases, None))?;
    Ok(leases.into_iter().filter(|l| l.is_live(now)).collect())
}
