//! The admin routes of the CAs: `GET /v1/admin/ca` (both CAs and the etcd client CA's
//! rotation) and `POST /v1/admin/ca/{ca}/{action}` (a step of the rotation, carried out by
//! `calseg_control::ca_rotation`).

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use calseg_api::ca::{CaStatus, ETCD_CLIENT, RotationAction, RotationStepped};
use calseg_control::ca_rotation;
use std::sync::Arc;
use time::OffsetDateTime;

/// GET both CAs and the latest rotation.
pub async fn get(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
) -> Result<Json<CaStatus>, ApiFailure> {
    let status = ca_rotation::status(&state.control, OffsetDateTime::now_utc()).await?;
    Ok(Json(status))
}

/// POST `begin`, `finish`, `pause`, `resume` or `rollback` the rotation of `ca`.
pub async fn action(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path((ca, action)): Path<(String, String)>,
) -> Result<Json<RotationStepped>, ApiFailure> {
    if ca != ETCD_CLIENT {
        return Err(ApiFailure::bad_request(
            "unknown_ca",
            &format!("unknown CA {ca:?}: calseg rotates `{ETCD_CLIENT}` through this route"),
        ));
    }
    let Some(parsed) = RotationAction::parse(&action) else {
        let known: Vec<&str> = RotationAction::ALL.iter().map(|a| a.name()).collect();
        return Err(ApiFailure::bad_request(
            "unknown_ca_action",
            &format!(
                "unknown CA rotation step {action:?}: use {}",
                known.join(", ")
            ),
        ));
    };
    tracing::info!(admin = %admin.name, "CA rotation {ca}: {action}");
    let now = OffsetDateTime::now_utc();
    let next = ca_rotation::act(&state.control, &admin.actor(), parsed, now).await?;
    let status = ca_rotation::status(&state.control, now).await?;
    Ok(Json(RotationStepped { next, status }))
}
