//! An operator's decisions about one node: approve the one key that waits (by its
//! fingerprint), deny, revoke, delete. Each decision is audited with who made it; a refused
//! approval is audited too, naming the key that waits. Every decision that changes which
//! nodes count pokes the reconciler.

use crate::revocation::{self, PendingUser};
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, NodeRecord, NodeState, StoreError};
use crate::{ControlError, pending::fingerprint_of};
use std::time::Duration;
use time::OffsetDateTime;

/// What an operator decided about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let in the key whose fingerprint (`sha256:<hex>`, as the agent printed it) is given;
    /// `None` is refused with the waiting key named.
    Approve {
        fingerprint: Option<String>,
    },
    Deny,
    /// Revoke, then wait up to this long for the node's etcd users to be gone.
    Revoke {
        wait: Duration,
    },
}

impl Decision {
    /// The decision named in `POST /v1/admin/nodes/<node>/<action>`.
    pub fn named(
        action: &str,
        fingerprint: Option<String>,
        wait: Option<Duration>,
    ) -> Result<Self, ControlError> {
        match action {
            "approve" => Ok(Self::Approve { fingerprint }),
            "deny" => Ok(Self::Deny),
            "revoke" => Ok(Self::Revoke {
                wait: wait.unwrap_or(revocation::DEFAULT_WAIT),
            }),
            other => Err(ControlError::not_found(
                "unknown_action",
                &format!("unknown node action {other:?}: use approve, deny or revoke"),
            )),
        }
    }
}

/// What a decision left: the node's record and, after a revocation, its etcd users still
/// there (each with the reason).
pub struct Decided {
    pub record: NodeRecord,
    pub etcd_users_pending: Option<Vec<PendingUser>>,
}

/// Carries out `decision` about `node`, made by `by`.
pub async fn decide(
    control: &Control,
    by: &str,
    node: &str,
    decision: Decision,
) -> Result<Decided, ControlError> {
    let (target, action, wait) = match decision {
        Decision::Approve { fingerprint } => {
            let record = approve(control, by, node, fingerprint.as_deref()).await?;
            control.poke_reconciler();
            return Ok(Decided {
                record,
                etcd_users_pending: None,
            });
        }
        Decision::Deny => (NodeState::Denied, AuditAction::Deny, None),
        Decision::Revoke { wait } => (NodeState::Revoked, AuditAction::Revoke, Some(wait)),
    };
    let (name, who, now) = (node.to_owned(), by.to_owned(), OffsetDateTime::now_utc());
    let record = control
        .store(move |s| s.set_node_state(&name, target, &who, now))
        .await?;
    let verb = if target == NodeState::Revoked {
        "revoke"
    } else {
        "deny"
    };
    control
        .audit(
            by,
            action,
            node,
            AuditOutcome::Ok,
            format!("{verb} by {by}"),
        )
        .await;
    control.poke_reconciler();
    let etcd_users_pending = match wait {
        Some(wait) => Some(revocation::wait_until_gone(control, node, wait).await),
        None => None,
    };
    Ok(Decided {
        record,
        etcd_users_pending,
    })
}

/// Approves the key waiting for `node`, only with its fingerprint. A missing or wrong
/// fingerprint is refused and audited, naming the key that waits.
async fn approve(
    control: &Control,
    by: &str,
    node: &str,
    fingerprint: Option<&str>,
) -> Result<NodeRecord, ControlError> {
    let refused = |error: ControlError| async {
        control
            .audit_refusal(by, AuditAction::Approve, node, &error, "")
            .await;
        error
    };
    let fingerprint = match fingerprint.map(calseg_api::fingerprint::parse) {
        Some(Ok(fingerprint)) => fingerprint,
        Some(Err(bad)) => {
            let error = ControlError::invalid("invalid_fingerprint", &bad.to_string());
            return Err(refused(error).await);
        }
        None => {
            let error = fingerprint_required(control, node).await?;
            return Err(refused(error).await);
        }
    };
    let (name, who, now) = (node.to_owned(), by.to_owned(), OffsetDateTime::now_utc());
    match control
        .store(move |s| s.approve_key(&name, &fingerprint, &who, now))
        .await
    {
        Ok(record) => {
            let detail = format!("approve by {by}: key {}", fingerprint_of(&record));
            control
                .audit(by, AuditAction::Approve, node, AuditOutcome::Ok, detail)
                .await;
            Ok(record)
        }
        Err(error) => Err(refused(error).await),
    }
}

/// The refusal of an approval without a fingerprint: names the key that waits and the
/// command that lets it in.
async fn fingerprint_required(control: &Control, node: &str) -> Result<ControlError, ControlError> {
    let record = known_node(control, node).await?;
    let waiting = match &record.pending_key {
        Some(key) => format!(
            "the key waiting is {} (asked from {}); check it against the fingerprint the agent \
             on {node} printed, then run `calseg-server nodes approve {node} --fingerprint {}`",
            key.fingerprint, key.source, key.fingerprint
        ),
        None => format!("no key is waiting for approval (it is {})", record.state),
    };
    Ok(ControlError::invalid(
        "fingerprint_required",
        &format!(
            "approving {node} needs --fingerprint: approval lets in exactly one key; {waiting}"
        ),
    ))
}

/// The record of `node`, or `unknown_node`.
pub async fn known_node(control: &Control, node: &str) -> Result<NodeRecord, ControlError> {
    let name = node.to_owned();
    control.store(move |s| s.node(&name)).await?.ok_or_else(|| {
        StoreError::UnknownNode {
            node: node.to_owned(),
        }
        .into()
    })
}

/// Deletes a pending or denied node (enrolled ones are refused with a pointer to `revoke`),
/// audited with the key it had.
pub async fn delete(control: &Control, by: &str, node: &str) -> Result<NodeRecord, ControlError> {
    let name = node.to_owned();
    let record = control.store(move |s| s.delete_node(&name)).await?;
    let detail = format!(
        "{} node deleted by {by} (key {})",
        record.state,
        fingerprint_of(&record)
    );
    control
        .audit(by, AuditAction::NodeDelete, node, AuditOutcome::Ok, detail)
        .await;
    Ok(record)
}
