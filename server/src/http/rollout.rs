//! The admin route of the rollout status: convergence and waves (`calseg_control::rollout`),
//! with the etcd release line.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use calseg_api::rollout::RolloutStatus;
use std::sync::Arc;

/// GET the rollout status of the current policy, with the recent policy revisions.
pub async fn get(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
) -> Result<Json<RolloutStatus>, ApiFailure> {
    let mut status = crate::rollout::current_status(&state.control).await?;
    status.etcd = state
        .control
        .reconciler
        .as_ref()
        .and_then(|r| r.release().latest())
        .map(|report| report.status_line());
    Ok(Json(status))
}
