//! Restart leases: the fleet's restart budget. A node asks for a lease before restarting its
//! units; the store grants it only while the live leases stay within the policy's
//! `max_unavailable` (fleet-wide and in the node's host group), so a rollout never restarts
//! more of the fleet at once than the operator allowed. Leases expire after `lease_ttl`, so a
//! dead agent's slot comes back by itself, and are never renewed past `max_lease_life` from
//! their grant, so a live one cannot hold its slot for good either.
//!
//! Grants and refusals are logged at debug level only: a busy rollout refuses many requests,
//! and they are not security events worth an audit entry each. A renewal refused at the life
//! cap is: it is logged as a warning, audited and counted (`lease_life_exceeded`).

use super::caller::{AdminCaller, NodeCaller};
use super::errors::ApiFailure;
use super::node_routes::{authorize, rfc3339};
use super::state::AppState;
use crate::policy::Policy;
use crate::store::{AuditAction, AuditOutcome, GroupBudget, LeaseBudget, LeaseRecord, NodeState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use calseg_api::lease::{LeaseGrant, LeaseInfo, LeaseRequest};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Most units one lease request may name (a node restarts a handful).
const MAX_UNITS: usize = 64;
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

fn grant(lease: &LeaseRecord, now: OffsetDateTime) -> LeaseGrant {
    LeaseGrant {
        lease_id: lease.id.clone(),
        expires_at: rfc3339(lease.expires_at),
        ttl_secs: (lease.expires_at - now)
            .whole_seconds()
            .max(0)
            .unsigned_abs(),
    }
}

fn ttl_of(policy: &Policy) -> time::Duration {
    time::Duration::try_from(policy.rollout.lease_ttl).unwrap_or(time::Duration::minutes(2))
}

fn max_life_of(policy: &Policy) -> time::Duration {
    time::Duration::try_from(policy.rollout.max_lease_life).unwrap_or(time::Duration::minutes(20))
}

/// POST a lease request: 200 with the lease, or 429 with `Retry-After`.
pub async fn acquire(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Json(request): Json<LeaseRequest>,
) -> Result<Json<LeaseGrant>, ApiFailure> {
    authorize(&state, &caller).await?;
    if request.units.len() > MAX_UNITS || request.units.iter().any(String::is_empty) {
        return Err(ApiFailure::bad_request(
            "bad_lease_request",
            &format!("a lease request names 0 to {MAX_UNITS} units, none of them empty"),
        ));
    }
    let policy = state.control.policy();
    let approved: Vec<String> = state
        .control
        .store(|s| s.nodes())
        .await?
        .into_iter()
        .filter(|n| n.state == NodeState::Approved)
        .map(|n| n.name)
        .collect();
    let budget = resolve_budget(&policy, &caller.name, &approved);
    let ttl = ttl_of(&policy);
    let now = OffsetDateTime::now_utc();
    let (node, units, wanted) = (caller.name.clone(), request.units.clone(), budget.clone());
    let result = state
        .control
        .store(move |s| s.acquire_lease(&node, &units, now, ttl, &wanted))
        .await;
    match result {
        Ok(lease) => {
            tracing::debug!(node = %caller.name, lease = %lease.id, revision = %request.revision, units = %request.units.join(","), "restart lease granted");
            Ok(Json(grant(&lease, now)))
        }
        Err(mut failure) => {
            if let Some(hint) = failure.retry_after {
                failure.retry_after = Some(retry_after(hint, crate::jitter::unit()));
            }
            tracing::debug!(
                node = %caller.name,
                kind = %failure.kind,
                fleet_limit = budget.fleet_limit,
                group = budget.group.as_ref().map_or("", |g| g.group.as_str()),
                group_limit = budget.group.as_ref().map_or(0, |g| g.limit),
                "restart lease refused: {}",
                failure.message
            );
            Err(failure.into())
        }
    }
}

/// DELETE a lease: 204; only its holder may.
pub async fn release(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    authorize(&state, &caller).await?;
    let node = caller.name.clone();
    let now = OffsetDateTime::now_utc();
    state
        .control
        .store(move |s| s.release_lease(&id, &node, now))
        .await?;
    tracing::debug!(node = %caller.name, "restart lease released");
    Ok(StatusCode::NO_CONTENT)
}

/// POST to extend a live lease by the policy's `lease_ttl` from now, up to `max_lease_life`
/// from its grant; 409 `lease_life_exceeded` (audited) once it ends at that cap.
pub async fn renew(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Path(id): Path<String>,
) -> Result<Json<LeaseGrant>, ApiFailure> {
    authorize(&state, &caller).await?;
    let policy = state.control.policy();
    let (ttl, max_life) = (ttl_of(&policy), max_life_of(&policy));
    let (node, lease_id) = (caller.name.clone(), id.clone());
    let now = OffsetDateTime::now_utc();
    let renewed = state
        .control
        .store(move |s| s.renew_lease(&lease_id, &node, now, ttl, max_life))
        .await;
    match renewed {
        Ok(lease) => Ok(Json(grant(&lease, now))),
        Err(failure) if failure.kind == "lease_life_exceeded" => {
            tracing::warn!(node = %caller.name, lease = %id, "restart lease not renewed: {}", failure.message);
            state.metrics.denied(&failure.kind);
            state
                .control
                .audit(
                    &caller.name,
                    AuditAction::Lease,
                    &id,
                    AuditOutcome::Denied,
                    format!(
                        "lease_life_exceeded: renewal past max_lease_life ({}s) refused",
                        max_life.whole_seconds()
                    ),
                )
                .await;
            Err(failure.into())
        }
        Err(failure) => Err(failure.into()),
    }
}

/// GET the live leases (admin).
pub async fn list(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
) -> Result<Json<Vec<LeaseInfo>>, ApiFailure> {
    let now = OffsetDateTime::now_utc();
    let leases = state.control.store(move |s| s.live_leases(now)).await?;
    Ok(Json(
        leases
            .into_iter()
            .map(|l| LeaseInfo {
                lease_id: l.id,
                node: l.node,
                units: l.units,
                group: l.group,
                granted_at: rfc3339(l.granted_at),
                expires_at: rfc3339(l.expires_at),
            })
            .collect(),
    ))
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
