//! The restart budget of a node's lease request, resolved from the policy: the fleet's
//! `max_unavailable` and that of the node's host group, each over the approved nodes in scope,
//! and how long a refused agent waits before it asks again.

use crate::policy::Policy;
use crate::store::{GroupBudget, LeaseBudget};
use std::time::Duration;

/// The longest wait a refusal asks for, before jitter: slots usually free up when a holder's
/// units settle, long before its lease would expire.
const MAX_RETRY_HINT: Duration = Duration::from_secs(15);

/// The budget a node's request is checked against: the fleet's `max_unavailable` over the
/// `approved` nodes, and that of the first `[[hosts]]` rule matching the node that has its own,
/// over the approved nodes that rule matches.
pub fn resolve_budget(policy: &Policy, node: &str, approved: &[String]) -> LeaseBudget {
    let fleet_limit = policy.rollout.max_unavailable.limit(approved.len());
    let group = policy.lease_group(node).map(|(index, rule, budget)| {
        let members = approved
            .iter()
            .filter(|name| rule.selector.matches(name))
            .count();
        GroupBudget {
            group: format!("hosts[{index}]"),
            limit: budget.limit(members),
        }
    });
    LeaseBudget { fleet_limit, group }
}

/// The `Retry-After` of a refusal: the store's hint capped at [`MAX_RETRY_HINT`], plus up to
/// half of it again (`unit` in [0, 1)), so refused agents do not all come back at once.
pub fn retry_after(hint: Duration, unit: f64) -> Duration {
    let base = hint.clamp(Duration::from_secs(1), MAX_RETRY_HINT).as_secs();
    let spread = (base / 2).max(1);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let extra = (unit.clamp(0.0, 1.0) * spread as f64).round() as u64;
    Duration::from_secs(base + extra)
}

/// How long a lease lives unless renewed (`[rollout] lease_ttl`).
pub fn ttl_of(policy: &Policy) -> time::Duration {
    time::Duration::try_from(policy.rollout.lease_ttl).unwrap_or(time::Duration::minutes(2))
}

/// How long a lease may live from its grant (`[rollout] max_lease_life`).
pub fn max_life_of(policy: &Policy) -> time::Duration {
    time::Duration::try_from(policy.rollout.max_lease_life).unwrap_or(time::Duration::minutes(20))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = "calico-node"
[[hosts]]
match = "w-*"
components = ["calico-node"]
[[hosts]]
match = "gw-*"
components = ["calico-node"]
max_unavailable = "50%"
{extra}"#
        );
        crate::policy::parse(&text, "policy.toml").unwrap()
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn the_default_is_ten_percent_of_approved_nodes_and_groups_count_their_own() {
        let p = policy("");
        let mut approved = names("w-", 36);
        approved.extend(names("gw-", 4));
        let worker = resolve_budget(&p, "w-0", &approved);
        assert_eq!(
            worker,
            LeaseBudget {
                fleet_limit: 4,
                group: None
            }
        );
        let gateway = resolve_budget(&p, "gw-0", &approved);
        assert_eq!(
            gateway.group,
            Some(GroupBudget {
                group: "hosts[1]".into(),
                limit: 2
            })
        );
        let counted = resolve_budget(&policy("[rollout]\nmax_unavailable = 3\n"), "w-1", &[]);
        assert_eq!(counted.fleet_limit, 3);
        let tiny = resolve_budget(&p, "w-1", &names("w-", 3));
        assert_eq!(tiny.fleet_limit, 1, "never below one");
    }

    #[test]
    fn retry_after_is_capped_and_jittered_upwards() {
        assert_eq!(retry_after(Duration::from_secs(120), 0.0), MAX_RETRY_HINT);
        assert_eq!(
            retry_after(Duration::from_secs(120), 0.99),
            Duration::from_secs(22)
        );
        assert_eq!(
            retry_after(Duration::from_secs(0), 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            retry_after(Duration::from_secs(1), 0.99),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_after(Duration::from_secs(4), 0.5),
            Duration::from_secs(5)
        );
    }
}
