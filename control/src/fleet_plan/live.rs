//! The fleet plan against the live fleet (`POST /v1/admin/rbac/plan`): of the policy in force,
//! or of a candidate policy an operator sent. The candidate is validated as a reload would,
//! then planned and dropped: never put in force, recorded, stored or logged.

use super::{node_plans, rbac_diff, sha256_hex};
use crate::ControlError;
use crate::manifest::manifest_for;
use crate::policy::{self, Policy};
use crate::rbac_apply::{etcd_failure, etcd_warnings, reconciler_of};
use crate::rollout::assign_waves;
use crate::state::Control;
use crate::store::{NodeRecord, NodeState};
use calseg_api::plan::{CandidatePolicy, FleetPlan, PlanSource};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The fleet plan: the RBAC diff against live etcd with the enrolled nodes, each approved
/// node's manifest changes against what it is served now, and its wave. `state_prefix` is the
/// shared store's prefix (replicas on etcd), which no candidate may grant.
pub async fn plan(
    control: &Control,
    candidate: Option<CandidatePolicy>,
    adopt: bool,
    state_prefix: Option<&str>,
) -> Result<FleetPlan, ControlError> {
    // A bad candidate is refused before anything else is asked.
    let candidate = candidate
        .map(|c| Candidate::validate(control, c, state_prefix))
        .transpose()?;
    let reconciler = reconciler_of(control)?;
    let enrolled = control.store(|s| s.nodes()).await?;
    let desired = match &candidate {
        // Once in force on every node (after any rollout in waves).
        Some(candidate) => crate::reconcile::desired_rbac(&candidate.policy, None, &enrolled),
        None => control.desired_rbac(&enrolled),
    };
    let rbac = reconciler
        .plan_desired(&desired, adopt)
        .await
        .map_err(etcd_failure)?;
    let waves = match &candidate {
        Some(candidate) => candidate.waves(control, &enrolled).await?,
        None => control.rollout().map(|active| active.record.waves),
    };
    let (name, policy) = match candidate {
        Some(candidate) => (candidate.origin, Arc::new(candidate.policy)),
        None => ("the policy in force".to_owned(), control.policy()),
    };
    let served = |record: &NodeRecord| {
        let (now, _) = control.policy_for(&record.name);
        manifest_for(&now, &record.name, record.generation, control.trust())
    };
    let (nodes, unchanged) = node_plans(
        &policy,
        &enrolled,
        &served,
        &control.etcd_ca_bundle_pem,
        waves.as_deref(),
    );
    Ok(FleetPlan {
        source: PlanSource::Server,
        policy: name,
        rbac: rbac_diff(&rbac),
        nodes_known: true,
        nodes,
        unchanged,
        policy_warnings: policy.warnings.iter().map(ToString::to_string).collect(),
        etcd_warnings: etcd_warnings(reconciler),
    })
}

/// A validated candidate: the policy, the name its file was sent under, and its text's hash.
struct Candidate {
    policy: Policy,
    origin: String,
    hash: String,
}

impl Candidate {
    /// Validates the candidate as a reload would (the policy's own checks, calseg's reserved
    /// etcd users, the shared store's prefix); a refusal names the file and line and changes
    /// nothing.
    fn validate(
        control: &Control,
        candidate: CandidatePolicy,
        state_prefix: Option<&str>,
    ) -> Result<Self, ControlError> {
        let CandidatePolicy { name, text } = candidate;
        let refused = |message: String| {
            ControlError::invalid(
                "invalid_policy",
                &format!("{message}\nthe candidate policy was refused; nothing was changed"),
            )
        };
        let policy = policy::parse(&text, &name).map_err(|errors| refused(errors.to_string()))?;
        control
            .admits(&policy, state_prefix)
            .map_err(|e| refused(format!("{name}: {e}")))?;
        Ok(Self {
            policy,
            origin: name,
            hash: sha256_hex(text.as_bytes()),
        })
    }

    /// The waves a reload of the candidate would start: `None` when its `[rollout]` has no
    /// canary or wave, or when it is the policy already recorded last (a reload changes
    /// nothing).
    async fn waves(
        &self,
        control: &Control,
        enrolled: &[NodeRecord],
    ) -> Result<Option<Vec<Vec<String>>>, ControlError> {
        let Some(settings) = &self.policy.rollout.waves else {
            return Ok(None);
        };
        let head = control.store(|s| s.policy_revisions(1)).await?;
        let to_revision = match head.first() {
            Some(head) if head.hash == self.hash => return Ok(None),
            Some(head) => head.revision + 1,
            None => 1,
        };
        // The nodes a rollout would cover, as `crate::rollout::start` picks them.
        let nodes: BTreeSet<String> = enrolled
            .iter()
            .filter(|r| {
                r.state == NodeState::Approved && !self.policy.components_for(&r.name).is_empty()
            })
            .map(|r| r.name.clone())
            .collect();
        Ok(Some(assign_waves(settings, to_revision, &nodes)))
    }
}
