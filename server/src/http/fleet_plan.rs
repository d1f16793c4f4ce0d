//! `POST /v1/admin/rbac/plan` (administrators only): the fleet plan of the policy in force, or
//! of a candidate policy sent in the body. The candidate is validated as a reload would, then
//! planned and dropped: never put in force, recorded, stored or logged.

use super::admin::{etcd_failure, etcd_warnings, reconciler};
use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use crate::fleet_plan::{node_plans, rbac_diff};
use crate::manifest::manifest_for;
use crate::policy::{self, Policy};
use crate::rollout::assign_waves;
use crate::store::{NodeRecord, NodeState};
use axum::Json;
use axum::extract::{Query, State};
use calseg_api::plan::{CandidatePolicy, FleetPlan, PlanRequest, PlanSource};
use serde::Deserialize;
use std::collections::BTreeSet;
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
    // A bad candidate is refused before anything else is asked.
    let candidate = request
        .candidate
        .map(|c| load_candidate(&state, c))
        .transpose()?;
    let reconciler = reconciler(&state)?;
    let enrolled = state.control.store(|s| s.nodes()).await?;
    let desired = match &candidate {
        // Once in force on every node (after any rollout in waves).
        Some((candidate, _)) => crate::reconcile::desired_rbac(&candidate.policy, None, &enrolled),
        None => state.control.desired_rbac(&enrolled),
    };
    let rbac = reconciler
        .plan_desired(&desired, query.adopt)
        .await
        .map_err(etcd_failure)?;
    let waves = match &candidate {
        Some((candidate, hash)) => candidate_waves(&state, candidate, hash, &enrolled).await?,
        None => state.control.rollout().map(|active| active.record.waves),
    };
    let (name, policy) = match candidate {
        Some((candidate, _)) => (candidate.origin, Arc::new(candidate.policy)),
        None => ("the policy in force".to_owned(), state.control.policy()),
    };
    let served = |record: &NodeRecord| {
        let (now, _) = state.control.policy_for(&record.name);
        manifest_for(
            &now,
            &record.name,
            record.generation,
            &state.control.etcd_ca_bundle_pem,
        )
    };
    let (nodes, unchanged) = node_plans(
        &policy,
        &enrolled,
        &served,
        &state.control.etcd_ca_bundle_pem,
        waves.as_deref(),
    );
    Ok(Json(FleetPlan {
        source: PlanSource::Server,
        policy: name,
        rbac: rbac_diff(&rbac),
        nodes_known: true,
        nodes,
        unchanged,
        policy_warnings: policy.warnings.iter().map(ToString::to_string).collect(),
        etcd_warnings: etcd_warnings(reconciler),
    }))
}

/// A validated candidate: the policy, the name its file was sent under, and its text's hash.
struct Candidate {
    policy: Policy,
    origin: String,
}

/// Validates the candidate as a reload would (the policy's own checks, calseg's reserved etcd
/// users, the HA store's prefix); a refusal names the file and line and changes nothing.
fn load_candidate(
    state: &AppState,
    candidate: CandidatePolicy,
) -> Result<(Candidate, String), ApiFailure> {
    let CandidatePolicy { name, text } = candidate;
    let refused = |message: String| {
        ApiFailure::bad_request(
            "invalid_policy",
            &format!("{message}\nthe candidate policy was refused; nothing was changed"),
        )
    };
    let policy = policy::parse(&text, &name).map_err(|errors| refused(errors.to_string()))?;
    policy
        .check_reserved_users(&state.control.reserved().names())
        .map_err(|e| refused(format!("{name}: {e}")))?;
    if let Some(replicas) = state.replicas() {
        crate::ha::access::check_policy_stays_out(&policy, &replicas.prefix)
            .map_err(|e| refused(format!("{name}: {e:#}")))?;
    }
    let hash = crate::fleet_plan::sha256_hex(text.as_bytes());
    Ok((
        Candidate {
            policy,
            origin: name,
        },
        hash,
    ))
}

/// The waves a reload of the candidate would start: `None` when its `[rollout]` has no canary
/// or wave, or when it is the policy already recorded last (a reload changes nothing).
async fn candidate_waves(
    state: &AppState,
    candidate: &Candidate,
    hash: &str,
    enrolled: &[NodeRecord],
) -> Result<Option<Vec<Vec<String>>>, ApiFailure> {
    let Some(settings) = &candidate.policy.rollout.waves else {
        return Ok(None);
    };
    let head = state.control.store(|s| s.policy_revisions(1)).await?;
    let to_revision = match head.first() {
        Some(head) if head.hash == hash => return Ok(None),
        Some(head) => head.revision + 1,
        None => 1,
    };
    // The nodes a rollout would cover, as `calseg_control::rollout::start` picks them.
    let nodes: BTreeSet<String> = enrolled
        .iter()
        .filter(|r| {
            r.state == NodeState::Approved && !candidate.policy.components_for(&r.name).is_empty()
        })
        .map(|r| r.name.clone())
        .collect();
    Ok(Some(assign_waves(settings, to_revision, &nodes)))
}
