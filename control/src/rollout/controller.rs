//! The rollout state machine as pure functions: how healthy a node is with the new policy,
//! what a running rollout does next given its nodes' health and the time, and the operator's
//! checked transitions. Time is a parameter (Unix seconds).

use crate::store::{NodeRecord, NodeState, RolloutRecord};
use calseg_api::rollout::{RolloutAction, RolloutState};
use std::time::Duration;

/// A node of an opened wave, against the manifest the new policy gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Reported the new manifest revision without errors (or has nothing to converge to, or is
    /// no longer approved: it cannot hold a wave open).
    Healthy,
    /// Not reported the new manifest revision yet: keeps its wave open.
    Pending,
    /// Reported errors with the new manifest revision.
    Failed,
}

/// `record`'s health given the manifest revision the new policy gives it (`None`: none).
pub fn node_health(record: &NodeRecord, target: Option<&str>) -> Health {
    let Some(target) = target else {
        return Health::Healthy;
    };
    if record.state != NodeState::Approved {
        return Health::Healthy;
    }
    let Some(last) = &record.last_report else {
        return Health::Pending;
    };
    // A report this version cannot read names no revision: the node has not shown it converged.
    let Some(report) = last.report() else {
        return Health::Pending;
    };
    if report.revision != target {
        return Health::Pending;
    }
    if !report.errors.is_empty() {
        Health::Failed
    } else {
        Health::Healthy
    }
}

/// Whether `node` gets the new policy under `rollout`.
pub fn serves_new(rollout: &RolloutRecord, node: &str) -> bool {
    match rollout.state {
        RolloutState::Done => true,
        RolloutState::RolledBack => false,
        RolloutState::Running | RolloutState::Paused | RolloutState::Aborted => rollout
            .waves
            .iter()
            .take(rollout.opened_waves)
            .any(|wave| wave.iter().any(|n| n == node)),
    }
}

/// What a running rollout does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do now.
    Wait,
    /// Too many failed nodes in the opened waves: pause.
    Pause { failed: Vec<String> },
    /// The last opened wave just turned healthy: start its bake.
    MarkHealthy,
    /// The last opened wave is no longer healthy: its bake starts over when it is.
    ClearHealthy,
    /// Open the next wave.
    OpenWave,
    /// Every wave is open, healthy and baked.
    Finish,
}

/// The next step of `rollout` at `now`, with `health` giving each node's health (asked only
/// for nodes of opened waves).
pub fn next_step(
    rollout: &RolloutRecord,
    health: impl Fn(&str) -> Health,
    bake: Duration,
    max_failures: u32,
    now: i64,
) -> Step {
    if rollout.state != RolloutState::Running {
        return Step::Wait;
    }
    let opened = rollout.opened_waves.min(rollout.waves.len());
    let failed: Vec<String> = rollout.waves[..opened]
        .iter()
        .flatten()
        .filter(|n| health(n) == Health::Failed)
        .cloned()
        .collect();
    if failed.len() >= usize::try_from(max_failures.max(1)).unwrap_or(usize::MAX) {
        return Step::Pause { failed };
    }
    let last_healthy = match opened.checked_sub(1) {
        // Nothing opened yet: the canary goes at once.
        None => return next_wave(rollout),
        Some(last) => rollout.waves[last]
            .iter()
            .all(|n| health(n) == Health::Healthy),
    };
    match (last_healthy, rollout.wave_healthy_at) {
        (false, Some(_)) => Step::ClearHealthy,
        (false, None) => Step::Wait,
        (true, None) if bake.is_zero() => next_wave(rollout),
        (true, None) => Step::MarkHealthy,
        (true, Some(since)) => {
            let baked =
                now.saturating_sub(since) >= i64::try_from(bake.as_secs()).unwrap_or(i64::MAX);
            if baked {
                next_wave(rollout)
            } else {
                Step::Wait
            }
        }
    }
}

fn next_wave(rollout: &RolloutRecord) -> Step {
    if rollout.opened_waves < rollout.waves.len() {
        Step::OpenWave
    } else {
        Step::Finish
    }
}

/// `rollout` after `step` at `now`.
pub fn apply_step(rollout: &RolloutRecord, step: &Step, now: i64) -> RolloutRecord {
    let mut next = rollout.clone();
    match step {
        Step::Wait => {}
        Step::Pause { .. } => next.state = RolloutState::Paused,
        Step::MarkHealthy => next.wave_healthy_at = Some(now),
        Step::ClearHealthy => next.wave_healthy_at = None,
        Step::OpenWave => {
            next.opened_waves += 1;
            next.wave_opened_at.push(now);
            next.wave_healthy_at = None;
        }
        Step::Finish => next.state = RolloutState::Done,
    }
    next
}

/// The operator's `action` on `rollout`, or why it does not apply.
pub fn manual(rollout: &RolloutRecord, action: RolloutAction) -> Result<RolloutRecord, String> {
    use RolloutState::{Aborted, Paused, RolledBack, Running};
    let to = match (action, rollout.state) {
        (RolloutAction::Pause, Running) => Paused,
        (RolloutAction::Resume, Paused) => Running,
        (RolloutAction::Abort, Running | Paused) => Aborted,
        (RolloutAction::Rollback, Running | Paused | Aborted) => RolledBack,
        (action, state) => {
            return Err(format!(
                "cannot {action:?} a rollout that is {state} (pause: running; resume: paused; \
                 abort: running or paused; rollback: running, paused or aborted)"
            )
            .to_lowercase());
        }
    };
    let mut next = rollout.clone();
    next.state = to;
    if to == Running {
        // The bake starts over after a pause.
        next.wave_healthy_at = None;
    }
    Ok(next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rollout(opened: usize) -> RolloutRecord {
        RolloutRecord {
            from_revision: 1,
            to_revision: 2,
            state: RolloutState::Running,
            opened_waves: opened,
            wave_opened_at: vec![100; opened],
            wave_healthy_at: None,
            created_at: 100,
            waves: vec![vec!["c".into()], vec!["a".into(), "b".into()]],
        }
    }

    fn health(map: &[(&str, Health)]) -> impl Fn(&str) -> Health {
        let map: BTreeMap<String, Health> = map.iter().map(|(n, h)| ((*n).into(), *h)).collect();
        move |n: &str| map.get(n).copied().unwrap_or(Health::Pending)
    }

    const BAKE: Duration = Duration::from_secs(30);

    #[test]
    fn the_canary_opens_at_once_and_the_next_wave_after_health_and_bake() {
        let r = rollout(0);
        assert_eq!(next_step(&r, health(&[]), BAKE, 1, 100), Step::OpenWave);
        let r = apply_step(&r, &Step::OpenWave, 100);
        assert!(serves_new(&r, "c") && !serves_new(&r, "a"));
        assert_eq!(
            next_step(&r, health(&[]), BAKE, 1, 101),
            Step::Wait,
            "never reported"
        );
        let ok = health(&[("c", Health::Healthy)]);
        assert_eq!(next_step(&r, &ok, BAKE, 1, 110), Step::MarkHealthy);
        let r = apply_step(&r, &Step::MarkHealthy, 110);
        assert_eq!(next_step(&r, &ok, BAKE, 1, 139), Step::Wait, "baking");
        assert_eq!(next_step(&r, &ok, BAKE, 1, 140), Step::OpenWave);
        let r = apply_step(&r, &Step::OpenWave, 140);
        assert_eq!(
            (r.opened_waves, r.wave_opened_at.clone()),
            (2, vec![100, 140])
        );
        assert!(serves_new(&r, "a"));
        let all = health(&[
            ("c", Health::Healthy),
            ("a", Health::Healthy),
            ("b", Health::Healthy),
        ]);
        let r = apply_step(&r, &next_step(&r, &all, BAKE, 1, 150), 150);
        assert_eq!(next_step(&r, &all, BAKE, 1, 180), Step::Finish);
        assert_eq!(
            next_step(
                &apply_step(&r, &Step::ClearHealthy, 150),
                &all,
                Duration::ZERO,
                1,
                150
            ),
            Step::Finish,
            "without a bake, healthy is enough"
        );
        let done = apply_step(&r, &Step::Finish, 180);
        assert_eq!(done.state, RolloutState::Done);
        assert_eq!(next_step(&done, &all, BAKE, 1, 999), Step::Wait);
    }

    #[test]
    fn a_wave_that_turns_unhealthy_restarts_its_bake() {
        let mut r = rollout(1);
        r.wave_healthy_at = Some(100);
        assert_eq!(next_step(&r, health(&[]), BAKE, 1, 120), Step::ClearHealthy);
        assert_eq!(
            apply_step(&r, &Step::ClearHealthy, 120).wave_healthy_at,
            None
        );
    }

    #[test]
    fn failures_in_opened_waves_pause_at_max_failures() {
        let r = rollout(1);
        let failed = health(&[("c", Health::Failed)]);
        assert_eq!(
            next_step(&r, &failed, BAKE, 1, 101),
            Step::Pause {
                failed: vec!["c".into()]
            }
        );
        assert_eq!(next_step(&r, &failed, BAKE, 2, 101), Step::Wait);
        // Failures in closed waves do not count.
        let closed = health(&[("c", Health::Healthy), ("a", Health::Failed)]);
        assert_eq!(next_step(&r, &closed, BAKE, 1, 101), Step::MarkHealthy);
        let paused = apply_step(&r, &Step::Pause { failed: vec![] }, 101);
        assert_eq!(paused.state, RolloutState::Paused);
        assert_eq!(next_step(&paused, &closed, BAKE, 1, 500), Step::Wait);
    }

    #[test]
    fn operator_transitions_are_checked() {
        let r = rollout(1);
        let paused = manual(&r, RolloutAction::Pause).unwrap();
        assert!(manual(&paused, RolloutAction::Pause).is_err());
        assert_eq!(
            manual(&paused, RolloutAction::Resume).unwrap().state,
            RolloutState::Running
        );
        let aborted = manual(&r, RolloutAction::Abort).unwrap();
        assert!(manual(&aborted, RolloutAction::Resume).is_err());
        assert!(
            serves_new(&aborted, "c") && !serves_new(&aborted, "a"),
            "nodes keep what they have"
        );
        let back = manual(&aborted, RolloutAction::Rollback).unwrap();
        assert_eq!(back.state, RolloutState::RolledBack);
        assert!(!serves_new(&back, "c"));
        assert!(manual(&back, RolloutAction::Rollback).is_err());
        let mut done = r.clone();
        done.state = RolloutState::Done;
        assert!(manual(&done, RolloutAction::Rollback).is_err());
    }

    #[test]
    fn health_compares_the_report_with_the_new_revision() {
        let report = |revision: &str, errors: &[&str]| {
            Some(calseg_api::report::LastReport::Read(
                calseg_api::report::Report {
                    revision: revision.into(),
                    identities: Vec::new(),
                    units: Vec::new(),
                    errors: errors.iter().map(|e| (*e).to_owned()).collect(),
                },
            ))
        };
        let mut node = NodeRecord::new("n", NodeState::Approved, time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(node_health(&node, Some("r2")), Health::Pending);
        assert_eq!(node_health(&node, None), Health::Healthy);
        node.last_report = report("r1", &[]);
        assert_eq!(node_health(&node, Some("r2")), Health::Pending);
        node.last_report = report("r2", &["boom"]);
        assert_eq!(node_health(&node, Some("r2")), Health::Failed);
        node.last_report = report("r2", &[]);
        assert_eq!(node_health(&node, Some("r2")), Health::Healthy);
        // A stored report this version cannot read shows no convergence.
        node.last_report =
            Some(serde_json::from_value(serde_json::json!({"revision": "r2"})).unwrap());
        assert_eq!(node_health(&node, Some("r2")), Health::Pending);
    }
}
