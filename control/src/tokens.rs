//! Enrollment tokens an operator makes and deletes: the scope is one node's name or a glob
//! with a number of uses; each change is audited with who made it. The secret exists only in
//! the answer to its creation; the store keeps its hash.

use crate::ControlError;
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, NewToken, TokenScope};
use calseg_api::admin::TokenCreate;
use time::OffsetDateTime;

/// The scope a request asks for: exactly one of a node's name (checked as a name, length
/// included: it becomes the fleet certificate's Common Name) or a glob.
pub fn scope_of(request: &TokenCreate) -> Result<TokenScope, ControlError> {
    match (&request.node, &request.glob) {
        (Some(node), None) => {
            crate::policy::check_node_name(node)
                .map_err(|m| ControlError::invalid("invalid_node_name", &m))?;
            Ok(TokenScope::Node(node.clone()))
        }
        (None, Some(glob)) => Ok(TokenScope::Match {
            glob: glob.clone(),
            uses_max: request.uses.unwrap_or(1),
        }),
        _ => Err(ControlError::invalid(
            "invalid_scope",
            "give exactly one of node (--node NAME) or glob (--match 'worker-*')",
        )),
    }
}

/// Creates the token `request` asks for, made by `by`.
pub async fn create(
    control: &Control,
    by: &str,
    request: &TokenCreate,
) -> Result<NewToken, ControlError> {
    let scope = scope_of(request)?;
    let ttl = time::Duration::seconds(i64::try_from(request.ttl_secs).unwrap_or(i64::MAX));
    let (who, now) = (by.to_owned(), OffsetDateTime::now_utc());
    let created = control
        .store(move |s| s.create_token(scope, ttl, now, &who))
        .await?;
    control
        .audit(
            by,
            AuditAction::TokenCreate,
            &created.id,
            AuditOutcome::Ok,
            String::new(),
        )
        .await;
    Ok(created)
}

/// Deletes the token `id`; false (and nothing audited) if there was none.
pub async fn delete(control: &Control, by: &str, id: &str) -> Result<bool, ControlError> {
    let token_id = id.to_owned();
    let deleted = control.store(move |s| s.delete_token(&token_id)).await?;
    if deleted {
        control
            .audit(
                by,
                AuditAction::TokenDelete,
                id,
                AuditOutcome::Ok,
                String::new(),
            )
            .await;
    }
    Ok(deleted)
}
