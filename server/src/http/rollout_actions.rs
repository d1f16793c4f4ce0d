//! The operator's actions on the rollout in waves (`POST /v1/admin/rollout/{action}`): parsed
//! here, carried out by `calseg_control::rollout::act`.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use calseg_api::rollout::{RolloutAction, RolloutStatus};
use std::sync::Arc;

/// POST `pause`, `resume`, `abort` or `rollback` the rollout in waves; answers the status.
pub async fn action(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path(action): Path<String>,
) -> Result<Json<RolloutStatus>, ApiFailure> {
    let Some(parsed) = RolloutAction::parse(&action) else {
        return Err(ApiFailure::bad_request(
            "unknown_rollout_action",
            &format!("unknown rollout action {action:?}: use pause, resume, abort or rollback"),
        ));
    };
    tracing::info!(admin = %admin.name, "rollout {action}");
    crate::rollout::act(&state.control, &admin.actor(), parsed).await?;
    Ok(Json(crate::rollout::current_status(&state.control).await?))
}
