//! The routes of restart leases (`calseg_control::leases`): a node's requests, renewals and
//! releases, and the administrators' list.

use super::caller::{AdminCaller, NodeCaller};
use super::errors::ApiFailure;
use super::node_routes::authorize;
use super::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use calseg_api::lease::{LeaseGrant, LeaseInfo, LeaseRequest};
use calseg_api::when::rfc3339;
use calseg_control::store::LeaseRecord;
use calseg_control::{CallFailure, leases};
use std::sync::Arc;
use time::OffsetDateTime;

fn grant(lease: &LeaseRecord, now: OffsetDateTime) -> LeaseGrant {
    LeaseGrant {
        lease_id: lease.id.clone(),
        expires_at: rfc3339(&lease.expires_at),
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
    let now = OffsetDateTime::now_utc();
    let lease = leases::acquire(
        &state.control,
        &caller.name,
        &request.units,
        &request.revision,
        now,
    )
    .await?;
    Ok(Json(grant(&lease, now)))
}

/// DELETE a lease: 204; only its holder may.
pub async fn release(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    authorize(&state, &caller).await?;
    leases::release(&state.control, &caller.name, &id, OffsetDateTime::now_utc()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST to extend a live lease by the policy's `lease_ttl` from now, up to `max_lease_life`
/// from its grant; 409 `lease_life_exceeded` (audited, counted) once it ends at that cap.
pub async fn renew(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Path(id): Path<String>,
) -> Result<Json<LeaseGrant>, ApiFailure> {
    authorize(&state, &caller).await?;
    let now = OffsetDateTime::now_utc();
    match leases::renew(&state.control, &caller.name, &id, now).await {
        Ok(lease) => Ok(Json(grant(&lease, now))),
        Err(CallFailure::Refused(error)) => {
            state.metrics.denied(&error.kind);
            Err(error.into())
        }
        Err(CallFailure::Failed(error)) => Err(error.into()),
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
                granted_at: rfc3339(&l.granted_at),
                expires_at: rfc3339(&l.expires_at),
            })
            .collect(),
    ))
}
