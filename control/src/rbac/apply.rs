//! Carries out a plan: stage after stage, the changes of one stage paced ([`Pacing`]: a window
//! of changes in flight that adapts to etcd's measured answer times, and a duty cycle), each
//! retried with patience on transient errors: an etcd that slows down, times out or is stopped
//! for a while makes the apply wait and finish later, not fail. Every change is idempotent: an
//! apply cut off halfway is finished by the next one, which plans again from what etcd then
//! holds.
//!
//! A conflict (a user the policy names that calseg does not own) holds back only that user: the
//! plan has no change for it, and everything else is applied. Changes that take access away
//! (revocations, user and role deletions) all run even when one of them is refused; only the
//! stages that give access stop at the first failure. An etcd that stays unreachable past the
//! retries' patience stops the apply at once: every further change would only wait as long.

use super::pace::{Pacer, Pacing};
use super::plan::{Change, Plan, Stage};
use super::retry::with_patience;
use super::state::EtcdGrant;
use calseg_api::access::Access;
use etcd_client::{
    Client, Permission, PermissionType, RoleRevokePermissionOptions, UserAddOptions,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use thiserror::Error;

/// Why an apply stopped.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(
        "etcd refused `{change}` after {applied} change(s) were applied: {source}. Run apply again to finish; calseg revokes before it grants, so nothing holds more than the policy allows"
    )]
    Change {
        change: String,
        applied: usize,
        #[source]
        source: etcd_client::Error,
    },
}

impl ApplyError {
    /// True when etcd could not be reached or answer in time, even after retries.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Change { source, .. } => super::retry::is_transient(source),
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Changes carried out.
    pub applied: usize,
    /// Conflicts left as they are (each holds back its own user only): see [`Plan::conflicts`].
    pub conflicts: usize,
}

/// Applies `plan` to etcd, paced by `pacing`. `progress(done, total)` is called after each
/// change.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    pacing: Pacing,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ApplyReport, ApplyError> {
    let total = plan.changes.len();
    let counted = Counted {
        done: AtomicUsize::new(0),
        total,
        progress,
    };
    let pacer = Mutex::new(Pacer::new(pacing));
    let mut first_error: Option<ApplyError> = None;
    let mut start = 0;
    while start < total {
        let stage: Stage = plan.changes[start].stage();
        if first_error.is_some() && !takes_away(stage) {
            break;
        }
        let end = plan.changes[start..]
            .iter()
            .position(|c| c.stage() != stage)
            .map_or(total, |offset| start + offset);
        let began = Instant::now();
        let error = run_stage(
            client,
            &plan.changes[start..end],
            !takes_away(stage),
            &pacer,
            &counted,
        )
        .await;
        tracing::debug!(
            ?stage,
            changes = end - start,
            ms = began.elapsed().as_secs_f64() * 1000.0,
            "stage applied"
        );
        let unreachable = error.as_ref().is_some_and(ApplyError::is_unreachable);
        if first_error.is_none() {
            first_error = error;
        }
        if unreachable {
            break;
        }
        start = end;
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(ApplyReport {
            applied: total,
            conflicts: plan.conflicts.len(),
        }),
    }
}

/// Progress of an apply.
struct Counted<'a> {
    done: AtomicUsize,
    total: usize,
    progress: &'a (dyn Fn(usize, usize) + Sync),
}

/// Runs the changes of one stage, as many at once as the pacer allows; the first error. After
/// an error it starts nothing more when `stop_on_error` (a stage that gives access) or when
/// etcd stayed unreachable, and waits for the changes in flight.
async fn run_stage(
    client: &Client,
    changes: &[Change],
    stop_on_error: bool,
    pacer: &Mutex<Pacer>,
    counted: &Counted<'_>,
) -> Option<ApplyError> {
    let mut queue = changes.iter().peekable();
    let mut running = FuturesUnordered::new();
    let mut first_error = None;
    loop {
        let now = Instant::now();
        let (window, not_before) = match pacer.lock() {
            Ok(p) => (p.window(), p.not_before(now)),
            Err(_) => (1, None),
        };
        let stalled = first_error
            .as_ref()
            .is_some_and(|error: &ApplyError| stop_on_error || error.is_unreachable());
        let may_start = running.len() < window && queue.peek().is_some() && !stalled;
        if may_start && not_before.is_none() {
            if let Some(change) = queue.next() {
                running.push(run_paced(client, change, pacer, counted));
            }
            continue;
        }
        let wake = not_before.filter(|_| may_start);
        if running.is_empty() {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => break,
            }
            continue;
        }
        let sleep = tokio::time::sleep_until(wake.unwrap_or(now).into());
        tokio::select! {
            Some(outcome) = running.next() => {
                if let Err(error) = outcome {
                    first_error.get_or_insert(error);
                }
            }
            () = sleep, if wake.is_some() => {}
        }
    }
    first_error
}

/// Runs one change, telling the pacer when it starts and ends, and counts it.
async fn run_paced(
    client: &Client,
    change: &Change,
    pacer: &Mutex<Pacer>,
    counted: &Counted<'_>,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    if let Ok(mut p) = pacer.lock() {
        p.started(started);
    }
    let outcome = run(client, change, pacer).await;
    let now = Instant::now();
    if let Ok(mut p) = pacer.lock() {
        p.finished(now, outcome.is_ok().then(|| now - started));
    }
    match outcome {
        Ok(()) => {
            let done = counted.done.fetch_add(1, Ordering::SeqCst) + 1;
            (counted.progress)(done, counted.total);
            Ok(())
        }
        Err(source) => Err(ApplyError::Change {
            change: change.to_string(),
            applied: counted.done.load(Ordering::SeqCst),
            source,
        }),
    }
}

/// Stages that only take access away: they run to the end even after a failure.
fn takes_away(stage: Stage) -> bool {
    matches!(
        stage,
        Stage::Revoke | Stage::DeleteUsers | Stage::DeleteRoles
    )
}

/// Carries out one change, patiently; an error that means "already done" counts as success
/// (an earlier attempt may have been applied although its answer was lost).
async fn run(
    client: &Client,
    change: &Change,
    pacer: &Mutex<Pacer>,
) -> Result<(), etcd_client::Error> {
    let on_transient = || {
        if let Ok(mut p) = pacer.lock() {
            p.failed(Instant::now());
        }
    };
    let outcome = with_patience(on_transient, || {
        let mut c = client.clone();
        async move {
            match change {
                Change::CreateRole { role } => c.role_add(role.as_str()).await.map(drop),
                Change::DeleteRole { role } => c.role_delete(role.as_str()).await.map(drop),
                Change::CreateUser { user } => c
                    .user_add(user.as_str(), "", Some(UserAddOptions::new().with_no_pwd()))
                    .await
                    .map(drop),
                Change::DeleteUser { user } => c.user_delete(user.as_str()).await.map(drop),
                Change::GrantRole { user, role } => c
                    .user_grant_role(user.as_str(), role.as_str())
                    .await
                    .map(drop),
                Change::RevokeRole { user, role } => c
                    .user_revoke_role(user.as_str(), role.as_str())
                    .await
                    .map(drop),
                Change::GrantPermission { role, grant, .. }
                | Change::NarrowPermission { role, grant, .. } => c
                    .role_grant_permission(role.as_str(), to_permission(grant))
                    .await
                    .map(drop),
                Change::RevokePermission { role, grant } => {
                    let options = (!grant.range_end.is_empty()).then(|| {
                        RoleRevokePermissionOptions::new().with_range_end(grant.range_end.clone())
                    });
                    c.role_revoke_permission(role.as_str(), grant.key.clone(), options)
                        .await
                        .map(drop)
                }
            }
        }
    })
    .await;
    match outcome {
        Err(error) if already_done(change, &error) => Ok(()),
        other => other,
    }
}

/// etcd's answers that mean an earlier (perhaps interrupted) attempt already made the change.
fn already_done(change: &Change, error: &etcd_client::Error) -> bool {
    let message = error.to_string();
    match change {
        Change::CreateRole { .. } => message.contains("role name already exists"),
        Change::CreateUser { .. } => message.contains("user name already exists"),
        Change::DeleteRole { .. } => message.contains("role name not found"),
        Change::DeleteUser { .. } => message.contains("user name not found"),
        Change::RevokePermission { .. } => message.contains("permission is not granted"),
        Change::RevokeRole { .. } => message.contains("role is not granted"),
        Change::GrantPermission { .. }
        | Change::NarrowPermission { .. }
        | Change::GrantRole { .. } => false,
    }
}

fn to_permission(grant: &EtcdGrant) -> Permission {
    let kind = match grant.access {
        Access::Read => PermissionType::Read,
        Access::Write => PermissionType::Write,
        Access::ReadWrite => PermissionType::Readwrite,
    };
    let permission = Permission::new(kind, grant.key.clone());
    if grant.range_end.is_empty() {
        permission
    } else {
        permission.with_range_end(grant.range_end.clone())
    }
}
