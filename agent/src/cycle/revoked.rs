//! A revoked node: the server answered 403 `node_revoked`. The fact is kept in the state
//! directory (`revoked.json`) so it is logged once, at error level with what to do, not on
//! every pass, and `status` shows it; a new enrollment removes it. The installed certificates
//! are not "still working": the node's etcd users were deleted with the revocation.

use super::{CycleContext, CycleResult};
use crate::client::ClientError;
use crate::state::{Outcome, REVOKED_WHAT_TO_DO, RevokedRecord};

/// The most of the server's message a revocation record keeps.
const MAX_MESSAGE_CHARS: usize = 300;

/// The pass's result for a revocation the server just reported, recording it (and logging it)
/// the first time only.
pub(super) fn revoked(ctx: &CycleContext, error: &ClientError) -> CycleResult {
    let (server, message) = match error {
        ClientError::Api { url, message, .. } => (url.clone(), message.clone()),
        other => (String::new(), other.to_string()),
    };
    // The server's words go into revoked.json and `status`: a bounded excerpt, not a page.
    let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    let known = ctx.state.revoked().ok().flatten();
    let what = REVOKED_WHAT_TO_DO.replace("NODE", &ctx.node);
    if known.is_none() {
        tracing::error!(
            node = %ctx.node,
            %server,
            "the server says this node was revoked; {what}"
        );
        let record = RevokedRecord {
            // RFC 3339 to the second in `status`.
            learned_at: ctx.now.replace_nanosecond(0).unwrap_or(ctx.now),
            server,
            message,
        };
        if let Err(e) = ctx.state.save_revoked(&record) {
            tracing::warn!(error = %e, "cannot record the revocation");
        }
    } else {
        tracing::debug!(node = %ctx.node, "still revoked");
    }
    CycleResult {
        outcome: Outcome::Revoked,
        report: None,
        errors: vec![format!("revoked: {error}")],
        retry_after: None,
    }
}

/// Forgets a recorded revocation once the server serves this node again (after a new
/// enrollment, which also removes it).
pub(super) fn served(ctx: &CycleContext) {
    if matches!(ctx.state.revoked(), Ok(Some(_))) {
        tracing::info!(node = %ctx.node, "the server serves this node again; it is no longer revoked");
        if let Err(e) = ctx.state.clear_revoked() {
            tracing::warn!(error = %e, "cannot clear the recorded revocation");
        }
    }
}
