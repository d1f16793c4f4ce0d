//! Carries out a plan: stage after stage, the changes of one stage in parallel (bounded),
//! each retried on transient errors. Every change is idempotent: an apply cut off halfway is
//! finished by the next one, which plans again from what etcd then holds.
//!
//! A conflict (a user the policy names that calseg does not own) holds back only that user: the
//! plan has no change for it, and everything else is applied. Changes that take access away
//! (revocations, user and role deletions) all run even when one of them fails; only the stages
//! that give access stop at the first failure.

use super::plan::{Change, Plan, Stage};
use super::retry::with_retry;
use super::state::EtcdGrant;
use calseg_api::access::Access;
use etcd_client::{
    Client, Permission, PermissionType, RoleRevokePermissionOptions, UserAddOptions,
};
use futures::{StreamExt, stream};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Changes carried out.
    pub applied: usize,
    /// Conflicts left as they are (each holds back its own user only): see [`Plan::conflicts`].
    pub conflicts: usize,
}

/// Applies `plan` to etcd. `progress(done, total)` is called after each change.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    parallelism: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ApplyReport, ApplyError> {
    let total = plan.changes.len();
    let done = AtomicUsize::new(0);
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
        let mut runs = Vec::with_capacity(end - start);
        for change in &plan.changes[start..end] {
            runs.push(run_counted(client, change, &done, total, progress));
        }
        let errors: Vec<ApplyError> = stream::iter(runs)
            .buffer_unordered(parallelism.max(1))
            .filter_map(std::future::ready)
            .collect()
            .await;
        if first_error.is_none() {
            first_error = errors.into_iter().next();
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

/// Runs one change and counts it; the error, if it failed.
async fn run_counted(
    client: &Client,
    change: &Change,
    done: &AtomicUsize,
    total: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Option<ApplyError> {
    match run(client, change).await {
        Ok(()) => {
            progress(done.fetch_add(1, Ordering::SeqCst) + 1, total);
            None
        }
        Err(source) => Some(ApplyError::Change {
            change: change.to_string(),
            applied: done.load(Ordering::SeqCst),
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

/// Carries out one change; an error that means "already done" counts as success.
async fn run(client: &Client, change: &Change) -> Result<(), etcd_client::Error> {
    let outcome = with_retry(|| {
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
