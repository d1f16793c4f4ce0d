//! Putting in force what the shared store says: the latest policy revision, or the rollout in
//! waves to it (with the previous revision for nodes of closed waves). Each replica does it
//! every second (the server's `ha::follow`), so a reload or an operator's rollout action on any
//! replica reaches all of them, and the leader's controller always steps the rollout the store
//! holds.

use crate::ControlError;
use crate::policy::Policy;
use crate::state::{ActiveRollout, Control};
use crate::store::RolloutRecord;
use calseg_api::rollout::RolloutState;
use std::sync::Arc;

/// How long a new revision whose policy rolls out in waves may wait for its rollout record
/// (written by the replica that loaded it, right after the revision) before replicas serve it
/// to every node, as that replica did when it could not start the rollout.
const ROLLOUT_RECORD_GRACE_SECS: i64 = 30;

/// What the store says is in force.
#[derive(Debug, PartialEq)]
enum InStore {
    /// Keep serving what is served: the latest revision's rollout in waves is being started.
    Unchanged,
    /// One policy revision for every node.
    Policy(u64),
    /// A rollout in waves to the latest revision.
    Rollout(RolloutRecord),
}

/// The state a store holding `latest` as its newest revision and `record` as its latest
/// rollout puts in force (the same rules a single server follows: the server's rollout driver).
/// `awaiting_waves`: the latest revision is new here, rolls out in waves, and its rollout
/// record may still be on its way.
fn in_store(latest: u64, record: Option<RolloutRecord>, awaiting_waves: bool) -> InStore {
    match record {
        Some(record) if record.to_revision == latest => match record.state {
            RolloutState::Running | RolloutState::Paused | RolloutState::Aborted => {
                InStore::Rollout(record)
            }
            RolloutState::RolledBack => InStore::Policy(record.from_revision),
            RolloutState::Done => InStore::Policy(latest),
        },
        _ if awaiting_waves => InStore::Unchanged,
        _ => InStore::Policy(latest),
    }
}

/// Whether revision `latest` (first seen at `first_seen`) is one this replica does not serve
/// yet, whose policy rolls out in waves, recently enough that its rollout record may still come.
async fn awaiting_waves(
    control: &Control,
    latest: u64,
    first_seen: i64,
    record: Option<&RolloutRecord>,
) -> Result<bool, ControlError> {
    let (_, serving) = control.policy_and_revision();
    if serving == Some(latest) || record.is_some_and(|r| r.to_revision == latest) {
        return Ok(false);
    }
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - first_seen;
    if age > ROLLOUT_RECORD_GRACE_SECS {
        return Ok(false);
    }
    Ok(policy_of(control, latest).await?.rollout.waves.is_some())
}

/// Puts in force what the store holds, when it differs from what this replica serves. The
/// caller holds `control.rollout_lock`.
pub async fn adopt_from_store(control: &Control) -> Result<(), ControlError> {
    let (revisions, record) = control
        .store(|s| Ok((s.policy_revisions(1)?, s.rollout()?)))
        .await?;
    let Some((latest, first_seen)) = revisions.first().map(|r| (r.revision, r.first_seen)) else {
        return Ok(());
    };
    let awaiting = awaiting_waves(control, latest, first_seen, record.as_ref()).await?;
    let (_, serving) = control.policy_and_revision();
    let active = control.rollout();
    match in_store(latest, record, awaiting) {
        InStore::Unchanged => return Ok(()),
        InStore::Policy(revision) => {
            if serving == Some(revision) && active.is_none() {
                return Ok(());
            }
            let policy = policy_of(control, revision).await?;
            tracing::info!(revision, "put the store's policy revision in force");
            control.set_policy(policy, Some(revision));
        }
        InStore::Rollout(record) => {
            if serving == Some(record.to_revision)
                && active.as_ref().map(|a| &a.record) == Some(&record)
            {
                return Ok(());
            }
            let to = policy_of(control, record.to_revision).await?;
            let from = policy_of(control, record.from_revision).await?;
            tracing::info!(
                from_revision = record.from_revision,
                to_revision = record.to_revision,
                state = %record.state,
                opened_waves = record.opened_waves,
                "put the store's rollout in waves in force"
            );
            let revision = record.to_revision;
            control.set_rollout(to, revision, ActiveRollout::new(from, record));
        }
    }
    control.poke_local_reconciler();
    Ok(())
}

/// The policy of `revision`: the one served already when it has that number, else parsed from
/// the text the store keeps.
async fn policy_of(control: &Control, revision: u64) -> Result<Arc<Policy>, ControlError> {
    let (policy, serving) = control.policy_and_revision();
    if serving == Some(revision) {
        return Ok(policy);
    }
    if let Some(active) = control.rollout()
        && active.record.from_revision == revision
    {
        return Ok(active.from);
    }
    let text = control.store(move |s| s.policy_text(revision)).await?;
    let Some(text) = text else {
        return Err(ControlError::internal(&format!(
            "policy revision {revision} is in force in the store but its text is not kept there"
        )));
    };
    crate::policy::parse(&text, &format!("stored policy revision {revision}"))
        .map(Arc::new)
        .map_err(|errors| {
            ControlError::internal(&format!(
                "the stored text of policy revision {revision} does not parse: {errors}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(to: u64, state: RolloutState) -> RolloutRecord {
        RolloutRecord {
            from_revision: to - 1,
            to_revision: to,
            state,
            opened_waves: 1,
            wave_opened_at: vec![0],
            wave_healthy_at: None,
            created_at: 0,
            waves: vec![vec!["n1".into()], vec!["n2".into()]],
        }
    }

    #[test]
    fn the_store_says_which_revision_every_replica_serves() {
        assert_eq!(in_store(3, None, false), InStore::Policy(3));
        let running = record(3, RolloutState::Running);
        assert_eq!(
            in_store(3, Some(running.clone()), false),
            InStore::Rollout(running)
        );
        let paused = record(3, RolloutState::Paused);
        assert_eq!(
            in_store(3, Some(paused.clone()), false),
            InStore::Rollout(paused)
        );
        assert_eq!(
            in_store(3, Some(record(3, RolloutState::Done)), false),
            InStore::Policy(3)
        );
        assert_eq!(
            in_store(3, Some(record(3, RolloutState::RolledBack)), false),
            InStore::Policy(2)
        );
        // A rollout to an older revision was superseded by a newer policy.
        assert_eq!(
            in_store(4, Some(record(3, RolloutState::Running)), false),
            InStore::Policy(4)
        );
    }

    #[test]
    fn a_new_revision_in_waves_waits_for_its_rollout_record() {
        assert_eq!(in_store(4, None, true), InStore::Unchanged);
        assert_eq!(
            in_store(4, Some(record(3, RolloutState::Done)), true),
            InStore::Unchanged
        );
        let running = record(4, RolloutState::Running);
        assert_eq!(
            in_store(4, Some(running.clone()), true),
            InStore::Rollout(running)
        );
    }
}
