//! The admin routes of the CAs: `GET /v1/admin/ca` (both CAs and their rotations) and
//! `POST /v1/admin/ca/{ca}/{action}` (a step of a rotation, carried out by
//! `calseg_control::ca_rotation` for the etcd client CA and `calseg_control::fleet_rotation`
//! for the fleet CA, after which the API's TLS follows the fleet CA files).

use super::caller::{AdminCaller, PeerCertificate};
use super::errors::ApiFailure;
use super::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use calseg_api::ca::{CaStatus, ETCD_CLIENT, FLEET, RotationAction, RotationStepped};
use calseg_control::{ca_rotation, fleet_rotation};
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
    certificate: Option<Extension<PeerCertificate>>,
    Path((ca, action)): Path<(String, String)>,
) -> Result<Json<RotationStepped>, ApiFailure> {
    if ca != ETCD_CLIENT && ca != FLEET {
        return Err(ApiFailure::bad_request(
            "unknown_ca",
            &format!("unknown CA {ca:?}: calseg rotates `{ETCD_CLIENT}` and `{FLEET}`"),
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
    let next = if ca == FLEET {
        let der = certificate.as_ref().map(|c| &*c.0.der);
        let next = fleet_rotation::act(&state.control, &admin.actor(), der, parsed, now).await?;
        if let Some(tls) = state.fleet_tls() {
            tls.sync(&state.control, true, now).map_err(|error| {
                ApiFailure::from(calseg_control::ControlError::internal(&format!(
                    "the fleet CA files changed but the API's TLS did not follow: {error:#}"
                )))
            })?;
        }
        next
    } else {
        ca_rotation::act(&state.control, &admin.actor(), parsed, now).await?
    };
    let status = ca_rotation::status(&state.control, now).await?;
    Ok(Json(RotationStepped { next, status }))
}
