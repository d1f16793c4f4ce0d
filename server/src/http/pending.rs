//! Pending enrollments (a node that asked without a token): the admin actions that need a look
//! at them: `nodes show`, `nodes approve --fingerprint` (approval binds the one key whose
//! fingerprint the operator compared with the agent's output) and `nodes delete`. Their limits:
//! [`super::enroll_limit::EnrollmentLimits`]; their expiry: `calseg_control::pending`.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use crate::inventory::{self, NodeFilter};
use crate::store::{AuditAction, AuditOutcome, NodeRecord, StoreError};
use axum::Json;
use axum::extract::{Path, State};
use calseg_api::admin::{IssuedIdentity, NodeAction, NodeDeleted};
use calseg_control::pending::fingerprint_of;
use std::sync::Arc;
use time::OffsetDateTime;

/// GET one node as `nodes list` shows it (with its pending key, if any), and the newest
/// certificate issued to it per component (`identities`).
pub async fn show(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
    Path(node): Path<String>,
) -> Result<Json<NodeShown>, ApiFailure> {
    let name = node.clone();
    let record = state
        .control
        .store(move |s| s.node(&name))
        .await?
        .ok_or_else(|| ApiFailure::from(StoreError::UnknownNode { node }))?;
    let mut rows = inventory::select(
        vec![record],
        &NodeFilter::default(),
        OffsetDateTime::now_utc(),
    );
    crate::rollout::annotate(
        &mut rows,
        &|node| state.control.policy_for(node).0,
        &state.control.etcd_ca_bundle_pem,
    );
    let row = rows
        .pop()
        .ok_or_else(|| ApiFailure::internal("the node vanished"))?;
    let name = row.record.name.clone();
    let issued = state
        .control
        .store(move |s| s.issued_for_node(&name))
        .await?;
    Ok(Json(NodeShown {
        row,
        identities: current_identities(issued),
    }))
}

/// One node as `nodes show` reads it (`calseg_api::admin::NodeListing`): its inventory row
/// and the newest certificate issued per component.
#[derive(serde::Serialize)]
pub struct NodeShown {
    #[serde(flatten)]
    row: inventory::InventoryRow,
    identities: Vec<IssuedIdentity>,
}

/// The newest certificate issued per component (`nodes show`): component, etcd user (the CN),
/// serial, notBefore and notAfter in RFC 3339.
fn current_identities(mut issued: Vec<crate::store::IssuedRecord>) -> Vec<IssuedIdentity> {
    issued.sort_by(|a, b| (&a.component, b.issued_at).cmp(&(&b.component, a.issued_at)));
    issued.dedup_by(|later, first| later.component == first.component);
    issued
        .iter()
        .map(|r| IssuedIdentity {
            component: r.component.clone(),
            etcd_user: r.cn.clone(),
            serial: r.serial.clone(),
            not_before: super::node_routes::rfc3339(r.not_before),
            not_after: super::node_routes::rfc3339(r.not_after),
        })
        .collect()
}

/// POST approve: only with the fingerprint of the key that is waiting. A missing or wrong
/// fingerprint is refused (and audited), naming the key that waits.
pub async fn approve(
    state: &AppState,
    admin: &AdminCaller,
    node: &str,
    body: &[u8],
) -> Result<NodeRecord, ApiFailure> {
    let by = admin.actor();
    let refused = |failure: ApiFailure| async {
        state
            .control
            .audit(
                &by,
                AuditAction::Approve,
                node,
                AuditOutcome::Denied,
                format!("{}: {}", failure.kind, failure.message),
            )
            .await;
        failure
    };
    let action: NodeAction = if body.iter().all(u8::is_ascii_whitespace) {
        NodeAction::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiFailure::bad_request(
                "invalid_body",
                &format!("the approve body is not {{\"fingerprint\": \"sha256:...\"}}: {e}"),
            )
        })?
    };
    let fingerprint = match action
        .fingerprint
        .as_deref()
        .map(calseg_api::fingerprint::parse)
    {
        Some(Ok(fingerprint)) => fingerprint,
        Some(Err(bad)) => {
            return Err(refused(ApiFailure::bad_request(
                "invalid_fingerprint",
                &bad.to_string(),
            ))
            .await);
        }
        None => {
            let name = node.to_owned();
            let record = state
                .control
                .store(move |s| s.node(&name))
                .await?
                .ok_or_else(|| {
                    ApiFailure::from(StoreError::UnknownNode {
                        node: node.to_owned(),
                    })
                })?;
            let waiting = match &record.pending_key {
                Some(key) => format!(
                    "the key waiting is {} (asked from {}); check it against the fingerprint the \
                     agent on {node} printed, then run `calseg-server nodes approve {node} \
                     --fingerprint {}`",
                    key.fingerprint, key.source, key.fingerprint
                ),
                None => format!("no key is waiting for approval (it is {})", record.state),
            };
            let message = format!(
                "approving {node} needs --fingerprint: approval lets in exactly one key; {waiting}"
            );
            return Err(refused(ApiFailure::bad_request("fingerprint_required", &message)).await);
        }
    };
    let (name, who, now) = (node.to_owned(), by.clone(), OffsetDateTime::now_utc());
    let approved = state
        .control
        .store(move |s| s.approve_key(&name, &fingerprint, &who, now))
        .await;
    match approved {
        Ok(record) => {
            let key = fingerprint_of(&record);
            state
                .control
                .audit(
                    &by,
                    AuditAction::Approve,
                    node,
                    AuditOutcome::Ok,
                    format!("approve by {by}: key {key}"),
                )
                .await;
            Ok(record)
        }
        Err(failure) => Err(refused(failure.into()).await),
    }
}

/// DELETE a pending or denied node; enrolled ones are refused with a pointer to `revoke`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path(node): Path<String>,
) -> Result<Json<NodeDeleted>, ApiFailure> {
    let name = node.clone();
    let by = admin.actor();
    match state.control.store(move |s| s.delete_node(&name)).await {
        Ok(record) => {
            let detail = format!(
                "{} node deleted by {by} (key {})",
                record.state,
                fingerprint_of(&record)
            );
            state
                .control
                .audit(
                    &by,
                    AuditAction::NodeDelete,
                    &node,
                    AuditOutcome::Ok,
                    detail,
                )
                .await;
            Ok(Json(NodeDeleted {
                deleted: node,
                state: record.state.to_string(),
            }))
        }
        Err(failure) => Err(failure.into()),
    }
}
