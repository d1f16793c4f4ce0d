//! Drives rollouts in waves: starts one when a new policy is loaded, resumes one after a
//! restart, runs the controller's tick (the running server calls it every second) and the
//! operator's actions (the admin route `POST /v1/admin/rollout/{action}`). Every change is
//! persisted, then put in force (which wakes parked long-polls), then the RBAC reconciler is
//! poked.

use super::{Health, Step, apply_step, assign_waves, manual, next_step, node_health};
use crate::ControlError;
use crate::manifest::manifest_for;
use crate::policy::{Policy, WaveSettings};
use crate::state::{ActiveRollout, Control};
use crate::store::{AuditAction, AuditOutcome, NodeState, RolloutRecord};
use calseg_api::rollout::{RolloutAction, RolloutState};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;

/// Starts a rollout in waves from the policy in force to `to` (revision `to_revision`), over
/// the approved nodes `to` gives a component. The canary opens on the controller's next tick.
pub async fn start(
    control: &Control,
    to: Arc<Policy>,
    to_revision: u64,
    settings: &WaveSettings,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    let _one_at_a_time = control.rollout_lock.lock().await;
    let (from, from_revision) = control.policy_and_revision();
    let Some(from_revision) = from_revision else {
        // Unnumbered: nothing to roll back to by number; go at once.
        control.set_policy(to, Some(to_revision));
        return Ok(());
    };
    if control.rollout().is_some() {
        tracing::warn!(
            "a new policy arrived during a rollout in waves: that rollout is superseded and the \
             new one starts from revision {from_revision} (nodes of its closed waves jump to it)"
        );
    }
    let nodes: BTreeSet<String> = control
        .store(|s| s.nodes())
        .await?
        .into_iter()
        .filter(|r| r.state == NodeState::Approved && !to.components_for(&r.name).is_empty())
        .map(|r| r.name)
        .collect();
    let waves = assign_waves(settings, to_revision, &nodes);
    let record = RolloutRecord::running(from_revision, to_revision, waves, now.unix_timestamp());
    tracing::info!(
        from_revision,
        to_revision,
        waves = record.waves.len(),
        nodes = nodes.len(),
        "rollout in waves started"
    );
    control
        .audit(
            "system",
            AuditAction::Rollout,
            &format!("revision {to_revision}"),
            AuditOutcome::Ok,
            format!(
                "started from revision {from_revision}: {} waves over {} nodes",
                record.waves.len(),
                nodes.len()
            ),
        )
        .await;
    commit(control, from, record, to).await
}

/// Marks the stored rollout aborted when a policy without waves replaces it (every node gets
/// that policy at once), so its status does not claim it still runs.
pub async fn supersede(control: &Control) -> Result<(), ControlError> {
    let _one_at_a_time = control.rollout_lock.lock().await;
    let Some(mut record) = control.store(|s| s.rollout()).await? else {
        return Ok(());
    };
    if record.state.is_final() || record.state == RolloutState::Aborted {
        return Ok(());
    }
    tracing::warn!(
        to_revision = record.to_revision,
        "a policy without waves replaced the rollout in waves: it is aborted"
    );
    record.state = RolloutState::Aborted;
    control.store(move |s| s.save_rollout(&record)).await
}

/// At start: when the store's latest rollout goes to `revision` (the policy just loaded) and is
/// not done, puts it back in force with the previous policy's stored text. A rollout to another
/// revision (the file changed while the server was stopped) is aborted: every node gets the
/// loaded policy.
pub async fn resume_after_restart(control: &Control, revision: u64) -> Result<(), ControlError> {
    let Some(record) = control.store(|s| s.rollout()).await? else {
        return Ok(());
    };
    if record.to_revision != revision {
        return supersede(control).await;
    }
    if record.state == RolloutState::Done {
        return Ok(());
    }
    let from_revision = record.from_revision;
    let text = control.store(move |s| s.policy_text(from_revision)).await?;
    let from = match text
        .as_deref()
        .map(|t| crate::policy::parse(t, "stored policy"))
    {
        Some(Ok(policy)) => Arc::new(policy),
        other => {
            let why = match other {
                Some(Err(errors)) => errors.to_string(),
                _ => "its text is not in the store".to_owned(),
            };
            tracing::error!(
                "cannot resume the rollout from revision {from_revision} to {revision}: the \
                 previous policy is unusable ({why}); every node gets revision {revision}"
            );
            return Ok(());
        }
    };
    tracing::info!(from_revision, to_revision = revision, state = %record.state, "rollout in waves resumed after a restart");
    commit(control, from, record, control.policy()).await
}

/// Persists `record` and puts it in force: both policies while it runs, `to` alone when done,
/// `from` alone after a rollback.
async fn commit(
    control: &Control,
    from: Arc<Policy>,
    record: RolloutRecord,
    to: Arc<Policy>,
) -> Result<(), ControlError> {
    let stored = record.clone();
    control.store(move |s| s.save_rollout(&stored)).await?;
    match record.state {
        RolloutState::Done => control.set_policy(to, Some(record.to_revision)),
        RolloutState::RolledBack => control.set_policy(from, Some(record.from_revision)),
        RolloutState::Running | RolloutState::Paused | RolloutState::Aborted => {
            let revision = record.to_revision;
            control.set_rollout(to, revision, ActiveRollout::new(from, record));
        }
    }
    control.poke_reconciler();
    Ok(())
}

/// When this server is one of several replicas: first puts in force what the shared store
/// holds (another replica may have changed the rollout), so a step starts from the stored one.
async fn follow_other_replicas(control: &Control) -> Result<(), ControlError> {
    if control.has_replicas() {
        crate::adopt::adopt_from_store(control).await?;
    }
    Ok(())
}

/// One step of the controller: opens the next wave, pauses, or finishes the running rollout.
pub async fn tick(control: &Control, now: OffsetDateTime) -> Result<(), ControlError> {
    let _one_at_a_time = control.rollout_lock.lock().await;
    follow_other_replicas(control).await?;
    let Some(active) = control.rollout() else {
        return Ok(());
    };
    if active.record.state != RolloutState::Running {
        return Ok(());
    }
    let to = control.policy();
    let health = opened_health(control, &to, &active.record).await?;
    let (bake, max_failures) = to
        .rollout
        .waves
        .as_ref()
        .map_or((std::time::Duration::ZERO, 1), |w| (w.bake, w.max_failures));
    let now = now.unix_timestamp();
    let step = next_step(
        &active.record,
        |node| health.get(node).copied().unwrap_or(Health::Healthy),
        bake,
        max_failures,
        now,
    );
    let record = apply_step(&active.record, &step, now);
    let subject = format!("revision {}", record.to_revision);
    let (outcome, detail) = match &step {
        Step::Wait => return Ok(()),
        Step::MarkHealthy | Step::ClearHealthy => (None, String::new()),
        Step::OpenWave => {
            let wave = record.opened_waves;
            tracing::info!(wave, of = record.waves.len(), "rollout wave opened");
            (
                Some(AuditOutcome::Ok),
                format!("wave {wave} of {} opened", record.waves.len()),
            )
        }
        Step::Pause { failed } => {
            tracing::warn!(failed = %failed.join(" "), "rollout paused: failed nodes reached max_failures");
            (
                Some(AuditOutcome::Error),
                format!(
                    "paused: {} failed node(s): {}",
                    failed.len(),
                    failed.join(" ")
                ),
            )
        }
        Step::Finish => {
            tracing::info!(revision = record.to_revision, "rollout done");
            (
                Some(AuditOutcome::Ok),
                "done: every wave healthy".to_owned(),
            )
        }
    };
    if let Some(outcome) = outcome {
        control
            .audit("system", AuditAction::Rollout, &subject, outcome, detail)
            .await;
    }
    commit(control, active.from, record, to).await
}

/// The health of every node of the opened waves, against the manifest `to` gives it.
async fn opened_health(
    control: &Control,
    to: &Policy,
    record: &RolloutRecord,
) -> Result<HashMap<String, Health>, ControlError> {
    let nodes = control.store(|s| s.nodes()).await?;
    let records: HashMap<&str, _> = nodes.iter().map(|r| (r.name.as_str(), r)).collect();
    let trust = control.trust();
    Ok(record
        .waves
        .iter()
        .take(record.opened_waves)
        .flatten()
        .map(|node| {
            let health = records.get(node.as_str()).map_or(Health::Healthy, |r| {
                let target = manifest_for(to, node, r.generation, &trust).map(|m| m.revision);
                node_health(r, target.as_deref())
            });
            (node.clone(), health)
        })
        .collect())
}

/// The operator's `action` on the rollout in waves, by `actor` (audited): pause, resume,
/// abort or roll back, as a checked transition of the stored rollout.
pub async fn act(
    control: &Control,
    actor: &str,
    action: RolloutAction,
) -> Result<(), ControlError> {
    let _one_at_a_time = control.rollout_lock.lock().await;
    follow_other_replicas(control).await?;
    let Some(active) = control.rollout() else {
        return Err(ControlError::conflict(
            "no_rollout",
            "no rollout in waves is in progress (`calseg-server rollout status`)",
        ));
    };
    let record = manual(&active.record, action)
        .map_err(|message| ControlError::conflict("rollout_state", &message))?;
    let detail = format!("{}: now {}", action.name(), record.state);
    tracing::info!(actor, "rollout {detail}");
    control
        .audit(
            actor,
            AuditAction::Rollout,
            &format!("revision {}", record.to_revision),
            AuditOutcome::Ok,
            detail,
        )
        .await;
    commit(control, active.from, record, control.policy()).await
}
