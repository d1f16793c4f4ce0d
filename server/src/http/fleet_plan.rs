//! `POST /v1/admin/rbac/plan` (administrators only): the fleet plan of the policy in force, or
//! of a candidate policy sent in the body (`calseg_control::fleet_plan::plan`). With replicas
//! on a shared etcd store, no candidate may grant the store's prefix.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use calseg_api::plan::{FleetPlan, PlanRequest};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub struct PlanQuery {
    #[serde(default)]
    adopt: bool,
}

/// The fleet plan: the RBAC diff against live etcd with the enrolled nodes, each approved
/// node's manifest changes against what it is served now, and its wave.
pub async fn plan(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
    Query(query): Query<PlanQuery>,
    Json(request): Json<PlanRequest>,
) -> Result<Json<FleetPlan>, ApiFailure> {
    let prefix = state.replicas().map(|replicas| replicas.prefix.as_str());
    let plan =
        crate::fleet_plan::plan(&state.control, request.candidate, query.adopt, prefix).await?;
    Ok(Json(plan))
}
