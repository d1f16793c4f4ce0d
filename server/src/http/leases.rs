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
use crate::rollout::{max_life_of, resolve_budget, retry_after, ttl_of};
use crate::store::{AuditAction, AuditOutcome, LeaseRecord, NodeState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use calseg_api::lease::{LeaseGrant, LeaseInfo, LeaseRequest};
use std::sync::Arc;
use time::OffsetDateTime;

/// Most units one lease request may name (a node restarts a handful).
const MAX_UNITS: usize = 64;
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
