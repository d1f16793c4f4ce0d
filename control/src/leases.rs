//! Restart leases: the fleet's restart budget. A node asks for a lease before restarting its
//! units; the store grants it only while the live leases stay within the policy's
//! `max_unavailable` (fleet-wide and in the node's host group), so a rollout never restarts
//! more of the fleet at once than the operator allowed. Leases expire after `lease_ttl`, so a
//! dead agent's slot comes back by itself, and are never renewed past `max_lease_life` from
//! their grant, so a live one cannot hold its slot for good either.
//!
//! Grants and refusals are logged at debug level only: a busy rollout refuses many requests,
//! and they are not security events worth an audit entry each. A renewal refused at the life
//! cap is: it is logged as a warning, audited and counted (`lease_life_exceeded`).

use crate::rollout::{max_life_of, resolve_budget, retry_after, ttl_of};
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, LeaseRecord, NodeState};
use crate::{CallFailure, ControlError};
use time::OffsetDateTime;

/// Most units one lease request may name (a node restarts a handful).
const MAX_UNITS: usize = 64;

/// Grants `node` a lease to restart `units` (for manifest `revision`) when the live leases
/// stay within its budget; a refusal says when to ask again (jittered).
pub async fn acquire(
    control: &Control,
    node: &str,
    units: &[String],
    revision: &str,
    now: OffsetDateTime,
) -> Result<LeaseRecord, ControlError> {
    if units.len() > MAX_UNITS || units.iter().any(String::is_empty) {
        return Err(ControlError::invalid(
            "bad_lease_request",
            &format!("a lease request names 0 to {MAX_UNITS} units, none of them empty"),
        ));
    }
    let policy = control.policy();
    let approved: Vec<String> = control
        .store(|s| s.nodes())
        .await?
        .into_iter()
        .filter(|n| n.state == NodeState::Approved)
        .map(|n| n.name)
        .collect();
    let budget = resolve_budget(&policy, node, &approved);
    let ttl = ttl_of(&policy);
    let (name, wanted_units, wanted) = (node.to_owned(), units.to_vec(), budget.clone());
    let result = control
        .store(move |s| s.acquire_lease(&name, &wanted_units, now, ttl, &wanted))
        .await;
    match result {
        Ok(lease) => {
            tracing::debug!(%node, lease = %lease.id, %revision, units = %units.join(","), "restart lease granted");
            Ok(lease)
        }
        Err(mut failure) => {
            if let Some(hint) = failure.retry_after {
                failure.retry_after = Some(retry_after(hint, crate::jitter::unit()));
            }
            tracing::debug!(
                %node,
                kind = %failure.kind,
                fleet_limit = budget.fleet_limit,
                group = budget.group.as_ref().map_or("", |g| g.group.as_str()),
                group_limit = budget.group.as_ref().map_or(0, |g| g.limit),
                "restart lease refused: {}",
                failure.message
            );
            Err(failure)
        }
    }
}

/// Ends lease `id`; only its holder `node` may.
pub async fn release(
    control: &Control,
    node: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    let (name, lease_id) = (node.to_owned(), id.to_owned());
    control
        .store(move |s| s.release_lease(&lease_id, &name, now))
        .await?;
    tracing::debug!(%node, "restart lease released");
    Ok(())
}

/// Extends `node`'s live lease `id` by the policy's `lease_ttl` from now, up to
/// `max_lease_life` from its grant; a renewal past that cap is refused and audited.
pub async fn renew(
    control: &Control,
    node: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<LeaseRecord, CallFailure> {
    let policy = control.policy();
    let (ttl, max_life) = (ttl_of(&policy), max_life_of(&policy));
    let (name, lease_id) = (node.to_owned(), id.to_owned());
    let renewed = control
        .store(move |s| s.renew_lease(&lease_id, &name, now, ttl, max_life))
        .await;
    match renewed {
        Ok(lease) => Ok(lease),
        Err(failure) if failure.kind == "lease_life_exceeded" => {
            tracing::warn!(%node, lease = %id, "restart lease not renewed: {}", failure.message);
            control
                .audit(
                    node,
                    AuditAction::Lease,
                    id,
                    AuditOutcome::Denied,
                    format!(
                        "lease_life_exceeded: renewal past max_lease_life ({}s) refused",
                        max_life.whole_seconds()
                    ),
                )
                .await;
            Err(CallFailure::Refused(failure))
        }
        Err(failure) => Err(CallFailure::Failed(failure)),
    }
}
