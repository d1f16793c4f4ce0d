//! Restart leases: the records and the pure budget check behind [`Store::acquire_lease`].
//!
//! A lease is live while `now < expires_at`; an expired lease never counts, whether or not the
//! store has deleted it yet. A node holds at most one live lease.
//!
//! [`Store::acquire_lease`]: super::Store::acquire_lease

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::StoreError;
use super::records::unix_ts;

/// One restart lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// 32 lowercase hex digits, random.
    pub id: String,
    pub node: String,
    /// The units the holder said it restarts (informational).
    pub units: Vec<String>,
    /// The host group it counts against (see [`GroupBudget::group`]), if any.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(with = "unix_ts")]
    pub granted_at: OffsetDateTime,
    #[serde(with = "unix_ts")]
    pub expires_at: OffsetDateTime,
}

impl LeaseRecord {
    /// Whether the lease still counts at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

/// The limits one acquisition is checked against, resolved by the caller from the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseBudget {
    /// Live leases allowed fleet-wide; at least 1.
    pub fleet_limit: u32,
    /// The node's host group and its own limit, when its policy rule has one.
    pub group: Option<GroupBudget>,
}

/// A host group's own limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupBudget {
    /// A stable name of the group, e.g. `hosts[2]` for the third `[[hosts]]` rule.
    pub group: String,
    /// Live leases allowed among the group's nodes; at least 1.
    pub limit: u32,
}

/// Checks whether one more lease for `group` fits among `live` (only live leases, none of them
/// the caller's). `BudgetFull` carries the tighter limit that is reached and when the earliest
/// lease that would free a slot expires.
pub(crate) fn check_budget(
    live: &[LeaseRecord],
    budget: &LeaseBudget,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let fleet_held = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let full =
        |scope: String, held: u32, limit: u32, leases: &mut dyn Iterator<Item = &LeaseRecord>| {
            let first_expiry = leases.map(|l| l.expires_at).min().unwrap_or(now);
            let wait = (first_expiry - now).whole_seconds().max(1);
            StoreError::BudgetFull {
                scope,
                held,
                limit,
                retry_after_hint: std::time::Duration::from_secs(wait.unsigned_abs()),
            }
        };
    if fleet_held >= budget.fleet_limit.max(1) {
        return Err(full(
            "the fleet".into(),
            fleet_held,
            budget.fleet_limit,
            &mut live.iter(),
        ));
    }
    if let Some(group) = &budget.group {
        let mut members = live
            .iter()
            .filter(|l| l.group.as_deref() == Some(group.group.as_str()));
        let held = u32::try_from(members.clone().count()).unwrap_or(u32::MAX);
        if held >= group.limit.max(1) {
            return Err(full(
                format!("host group {}", group.group),
                held,
                group.limit,
                &mut members,
            ));
        }
    }
    Ok(())
}

/// A new lease of `node` for `units` until `expires_at`, under a random id that `taken` says no
/// stored lease has. The caller stores it in the same transaction it checked the budget in.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_lease(
    rng: &dyn ring::rand::SecureRandom,
    mut taken: impl FnMut(&str) -> Result<bool, StoreError>,
    node: &str,
    units: &[String],
    budget: &LeaseBudget,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<LeaseRecord, StoreError> {
    let id = loop {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes).map_err(|_| StoreError::Random)?;
        let id = hex::encode(bytes);
        if !taken(&id)? {
            break id;
        }
    };
    Ok(LeaseRecord {
        id,
        node: node.to_owned(),
        units: units.to_vec(),
        group: budget.group.as_ref().map(|g| g.group.clone()),
        granted_at: now,
        expires_at,
    })
}

/// When a lease granted or renewed at `now` for `ttl` ends; refuses a lifetime that is not
/// positive or overflows.
pub(in crate::store) fn expiry(
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<OffsetDateTime, StoreError> {
    if !ttl.is_positive() {
        let reason = format!("lease lifetime {ttl} is not positive");
        return Err(StoreError::InvalidTtl { reason });
    }
    now.checked_add(ttl).ok_or_else(|| StoreError::InvalidTtl {
        reason: format!("lease lifetime {ttl} is too long"),
    })
}

/// When `lease`, renewed at `now`, ends: `now + ttl`, but never later than `max_life` after its
/// grant. `LeaseLifeExceeded` once it already ends at that cap: no renewal can extend it, so a
/// node cannot hold a slot of the budget for good by renewing.
pub(in crate::store) fn renewed_expiry(
    lease: &LeaseRecord,
    now: OffsetDateTime,
    ttl: Duration,
    max_life: Duration,
) -> Result<OffsetDateTime, StoreError> {
    let wanted = expiry(now, ttl)?;
    let cap = expiry(lease.granted_at, max_life)?;
    if lease.expires_at >= cap {
        return Err(StoreError::LeaseLifeExceeded {
            id: lease.id.clone(),
            node: lease.node.clone(),
            max_life_secs: max_life.whole_seconds().unsigned_abs(),
            ends_at: lease.expires_at.unix_timestamp(),
        });
    }
    Ok(wanted.min(cap))
}

/// `lease` (stored under `id`) if `node` holds it: `UnknownLease` if there is none,
/// `LeaseNotHeld` if another node does.
pub(in crate::store) fn holder_checked(
    lease: Option<LeaseRecord>,
    id: &str,
    node: &str,
) -> Result<LeaseRecord, StoreError> {
    let lease = lease.ok_or_else(|| StoreError::UnknownLease { id: id.to_owned() })?;
    if lease.node != node {
        return Err(StoreError::LeaseNotHeld {
            id: id.to_owned(),
            node: node.to_owned(),
        });
    }
    Ok(lease)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn lease(node: &str, group: Option<&str>, expires_in: i64) -> LeaseRecord {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        LeaseRecord {
            id: node.into(),
            node: node.into(),
            units: vec![],
            group: group.map(str::to_owned),
            granted_at: now,
            expires_at: now + time::Duration::seconds(expires_in),
        }
    }

    #[test]
    fn renewals_never_take_a_lease_past_its_longest_life() {
        // Issue 17: a lease renewed forever held the budget for good.
        let granted = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let (ttl, max_life) = (Duration::seconds(120), Duration::seconds(300));
        let mut held = lease("a", None, 120);
        let at = |s: i64| granted + Duration::seconds(s);
        // Well inside the cap: now + ttl.
        held.expires_at = renewed_expiry(&held, at(60), ttl, max_life).unwrap();
        assert_eq!(held.expires_at, at(180));
        // Near the cap: cut to granted + max_life, not refused yet.
        held.expires_at = renewed_expiry(&held, at(200), ttl, max_life).unwrap();
        assert_eq!(held.expires_at, at(300));
        // At the cap: refused, however early or late the renewal comes.
        for when in [201, 290, 299] {
            match renewed_expiry(&held, at(when), ttl, max_life).unwrap_err() {
                StoreError::LeaseLifeExceeded {
                    id,
                    node,
                    max_life_secs,
                    ends_at,
                } => {
                    assert_eq!((id.as_str(), node.as_str()), ("a", "a"));
                    assert_eq!((max_life_secs, ends_at), (300, 1_300));
                }
                other => panic!("{other:?}"),
            }
        }
        // A cap lowered below the lease's life so far (a policy reload) refuses at once.
        let young = lease("b", None, 120);
        let error = renewed_expiry(&young, at(10), ttl, Duration::seconds(60)).unwrap_err();
        assert_eq!(error.kind(), "lease_life_exceeded");
        assert!(error.to_string().contains("max_lease_life"), "{error}");
    }

    #[test]
    fn the_fleet_and_the_group_limits_both_apply() {
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        let budget = LeaseBudget {
            fleet_limit: 3,
            group: Some(GroupBudget {
                group: "hosts[0]".into(),
                limit: 1,
            }),
        };
        assert!(check_budget(&[], &budget, now).is_ok());
        let live = [lease("a", Some("hosts[0]"), 30), lease("b", None, 10)];
        match check_budget(&live, &budget, now).unwrap_err() {
            StoreError::BudgetFull {
                held,
                limit,
                retry_after_hint,
                scope,
            } => {
                assert_eq!((held, limit), (1, 1));
                assert_eq!(scope, "host group hosts[0]");
                assert_eq!(retry_after_hint.as_secs(), 30, "the group's lease frees it");
            }
            other => panic!("{other:?}"),
        }
        let other_group = LeaseBudget {
            fleet_limit: 3,
            group: None,
        };
        assert!(check_budget(&live, &other_group, now).is_ok());
        let live = [
            lease("a", None, 30),
            lease("b", None, 10),
            lease("c", None, 0),
        ];
        match check_budget(&live, &other_group, now).unwrap_err() {
            StoreError::BudgetFull {
                retry_after_hint, ..
            } => assert_eq!(retry_after_hint.as_secs(), 1, "never less than a second"),
            other => panic!("{other:?}"),
        }
    }
}
