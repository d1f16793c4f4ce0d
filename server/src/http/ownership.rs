//! The API's signing guard: before a node enrolls, and again before every certificate, each
//! etcd user it would hold must be one calseg may sign for (not reserved, and not in etcd
//! without calseg's marker role: see `rbac::ownership`), as etcd holds it at that moment.

use super::errors::ApiFailure;
use super::state::AppState;
use crate::rbac::{self, NotOwned};
use axum::http::StatusCode;

/// The stable kind of a refusal to sign for a user calseg does not own.
pub const NOT_OWNED: &str = "etcd_user_not_owned";

/// Refuses `user` when calseg may not sign a certificate naming it.
pub(super) async fn ensure_owned(state: &AppState, user: &str) -> Result<(), ApiFailure> {
    let reserved = state.reserved();
    reserved.check(user).map_err(refused)?;
    let roles = match &state.reconciler {
        Some(reconciler) => reconciler.user_roles(user).await.map_err(|error| {
            ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "etcd_unavailable",
                &format!(
                    "cannot confirm that calseg owns the etcd user {user} ({error:#}); calseg \
                     signs only for users it owns: try again once etcd answers"
                ),
            )
        })?,
        None => None,
    };
    rbac::judge(user, &reserved, roles.as_ref()).map_err(refused)
}

/// Refuses the enrollment of `node` when any etcd user the policy gives it (in its enrollment
/// generation) is one calseg may not sign for.
pub(super) async fn ensure_node_owned(state: &AppState, node: &str) -> Result<(), ApiFailure> {
    let name = node.to_owned();
    let generation = state
        .store_read(move |s| s.node(&name))
        .await?
        .map_or(0, |record| record.generation);
    let (policy, _) = state.policy_for(node);
    for component in policy.components_for(node) {
        ensure_owned(state, &policy.etcd_user(&component.name, node, generation)).await?;
    }
    Ok(())
}

fn refused(error: NotOwned) -> ApiFailure {
    ApiFailure::forbidden(NOT_OWNED, &error.to_string())
}
