//! Restart leases on redb. redb has one writer at a time, so the count-then-insert of
//! [`acquire`] cannot interleave with another acquisition: the budget holds under concurrency.

use redb::{ReadableTable, Table};
use time::{Duration, OffsetDateTime};

use super::RedbStore;
use super::tables::{self, LEASES};
use crate::store::leases::{check_budget, new_lease};
use crate::store::leases::{expiry, holder_checked, renewed_expiry};
use crate::store::{LeaseBudget, LeaseRecord, StoreError};

const TABLE: &str = "leases";

/// Every lease in the table, live or not.
fn all<R: ReadableTable<&'static str, &'static [u8]>>(
    table: &R,
) -> Result<Vec<LeaseRecord>, StoreError> {
    tables::all(table, TABLE)
}

/// Deletes the leases expired at `now`; returns the live ones.
fn expire(
    table: &mut Table<&'static str, &'static [u8]>,
    now: OffsetDateTime,
) -> Result<Vec<LeaseRecord>, StoreError> {
    let (live, expired): (Vec<_>, Vec<_>) = all(table)?.into_iter().partition(|l| l.is_live(now));
    for lease in expired {
        table.remove(lease.id.as_str())?;
    }
    Ok(live)
}

pub(super) fn acquire(
    store: &RedbStore,
    node: &str,
    units: &[String],
    now: OffsetDateTime,
    ttl: Duration,
    budget: &LeaseBudget,
) -> Result<LeaseRecord, StoreError> {
    let expires_at = expiry(now, ttl)?;
    store.write(|tx| {
        let mut table = tx.open_table(LEASES)?;
        let live = expire(&mut table, now)?;
        if let Some(own) = live.iter().find(|l| l.node == node) {
            return Ok(own.clone());
        }
        check_budget(&live, budget, now)?;
        let lease = new_lease(
            &store.rng,
            |id| Ok(table.get(id)?.is_some()),
            node,
            units,
            budget,
            now,
            expires_at,
        )?;
        tables::put(&mut table, TABLE, &lease.id, &lease)?;
        Ok(lease)
    })
}

/// The lease `id` of `node`, or why not.
fn held(
    table: &Table<&'static str, &'static [u8]>,
    id: &str,
    node: &str,
) -> Result<LeaseRecord, StoreError> {
    holder_checked(tables::get(table, TABLE, id)?, id, node)
}

pub(super) fn release(
    store: &RedbStore,
    id: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(LEASES)?;
        held(&table, id, node)?;
        table.remove(id)?;
        expire(&mut table, now)?;
        Ok(())
    })
}

pub(super) fn renew(
    store: &RedbStore,
    id: &str,
    node: &str,
    now: OffsetDateTime,
    ttl: Duration,
    max_life: Duration,
) -> Result<LeaseRecord, StoreError> {
    expiry(now, ttl)?;
    store.write(|tx| {
        let mut table = tx.open_table(LEASES)?;
        let mut lease = held(&table, id, node)?;
        if !lease.is_live(now) {
            table.remove(id)?;
            return Err(StoreError::UnknownLease { id: id.to_owned() });
        }
        lease.expires_at = renewed_expiry(&lease, now, ttl, max_life)?;
        tables::put(&mut table, TABLE, id, &lease)?;
        Ok(lease)
    })
}

pub(super) fn live(store: &RedbStore, now: OffsetDateTime) -> Result<Vec<LeaseRecord>, StoreError> {
    store.read(|tx| {
        let leases = all(&tx.open_table(LEASES)?)?;
        Ok(leases.into_iter().filter(|l| l.is_live(now)).collect())
    })
}
