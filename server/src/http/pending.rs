//! Pending and denied nodes, as the admin API shows and removes them: `nodes show` (with the
//! pending key, if any) and `nodes delete`. Approval is `calseg_control::approval`; the limits
//! on pending enrollments are [`super::enroll_limit::EnrollmentLimits`], their expiry
//! `calseg_control::pending`.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use calseg_api::admin::NodeDeleted;
use calseg_control::node_listing::{self, NodeShown};
use std::sync::Arc;

/// GET one node as `nodes list` shows it (with its pending key, if any), and the newest
/// certificate issued to it per component (`identities`).
pub async fn show(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
    Path(node): Path<String>,
) -> Result<Json<NodeShown>, ApiFailure> {
    Ok(Json(node_listing::show(&state.control, &node).await?))
}

/// DELETE a pending or denied node; enrolled ones are refused with a pointer to `revoke`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path(node): Path<String>,
) -> Result<Json<NodeDeleted>, ApiFailure> {
    let record = calseg_control::approval::delete(&state.control, &admin.actor(), &node).await?;
    Ok(Json(NodeDeleted {
        deleted: node,
        state: record.state.to_string(),
    }))
}
