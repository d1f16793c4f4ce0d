//! Enrollment and the fleet CA: a node proves itself with a token, an operator's approval or an
//! auto-approve glob, and receives a fleet certificate signed from its own CSR.

use super::errors::ApiFailure;
use super::state::AppState;
use crate::metrics::IssuedKind;
use crate::store::{AuditAction, AuditOutcome, NodeState};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calseg_api::enroll::{EnrollRequest, EnrollResponse, FleetCa};
use std::sync::Arc;
use time::OffsetDateTime;

/// Seconds a pending agent waits before asking again.
const PENDING_RETRY_SECS: u64 = 10;

/// GET the fleet CA, for agents to check against their pinned hash.
pub async fn fleet_ca(State(state): State<Arc<AppState>>) -> Json<FleetCa> {
    Json(FleetCa {
        fleet_ca_pem: state.fleet_ca.cert_pem().to_owned(),
    })
}

/// POST an enrollment.
pub async fn enroll(
    State(state): State<Arc<AppState>>,
    Json(request): Json<EnrollRequest>,
) -> Result<Response, ApiFailure> {
    let node = request.node.clone();
    crate::policy::check_node_name(&node)
        .map_err(|message| ApiFailure::bad_request("invalid_node_name", &message))?;
    // No fleet certificate for a node whose etcd users calseg does not own (nor a used token).
    if let Err(failure) = super::ownership::ensure_node_owned(&state, &node).await {
        deny(&state, &node, &failure).await;
        return Err(failure);
    }
    let now = OffsetDateTime::now_utc();
    // Check and sign the CSR first: a bad CSR must not consume a token.
    let issued = match state.fleet_ca.sign_agent_csr(
        &request.csr_pem,
        &state.csr_rules,
        &node,
        state.fleet_lifetime,
        now,
    ) {
        Ok(issued) => issued,
        Err(error) => {
            let failure = ApiFailure::from(error);
            deny(&state, &node, &failure).await;
            return Err(failure);
        }
    };
    let approved_by = match &request.token {
        Some(token) => {
            let (token, name) = (token.clone(), node.clone());
            match state
                .store(move |s| s.redeem_token(&token, &name, now))
                .await
            {
                Ok(used) => format!("token:{}", used.token_id),
                Err(failure) => {
                    deny(&state, &node, &failure).await;
                    return Err(failure);
                }
            }
        }
        None => match approve_without_token(&state, &node, &request.csr_pem, now).await {
            Ok(Some(by)) => by,
            Ok(None) => {
                state
                    .audit(
                        &node,
                        AuditAction::Enroll,
                        &node,
                        AuditOutcome::Ok,
                        "pending approval".into(),
                    )
                    .await;
                let body = EnrollResponse::Pending {
                    retry_after_secs: PENDING_RETRY_SECS,
                };
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
            }
            Err(failure) => {
                deny(&state, &node, &failure).await;
                return Err(failure);
            }
        },
    };
    let (name, serial, not_after) = (node.clone(), issued.serial_hex.clone(), issued.not_after);
    state
        .store(move |s| s.record_fleet_cert(&name, &serial, not_after, now))
        .await?;
    state
        .audit(
            &node,
            AuditAction::Enroll,
            &node,
            AuditOutcome::Ok,
            format!("fleet certificate {} ({approved_by})", issued.serial_hex),
        )
        .await;
    state.metrics.issued(IssuedKind::Fleet);
    tracing::info!(%node, serial = %issued.serial_hex, %approved_by, "node enrolled");
    state.poke_reconciler();
    Ok(Json(EnrollResponse::Enrolled {
        cert_pem: issued.cert_pem,
        fleet_ca_pem: state.fleet_ca.cert_pem().to_owned(),
    })
    .into_response())
}

/// Without a token: `Some(approver)` when the node may have its certificate now, `None` when it
/// must wait for an operator.
async fn approve_without_token(
    state: &AppState,
    node: &str,
    csr_pem: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, ApiFailure> {
    let name = node.to_owned();
    let existing = state.store(move |s| s.node(&name)).await?;
    if let Some(record) = &existing
        && record.state == NodeState::Approved
    {
        // Approved by an operator while pending: only the CSR it approved gets a certificate.
        if record.pending_csr.as_deref() == Some(csr_pem) {
            return Ok(Some(
                record.approved_by.clone().unwrap_or_else(|| "admin".into()),
            ));
        }
        return Err(ApiFailure::forbidden(
            "already_enrolled",
            &format!(
                "node {node} is already enrolled; to enroll it again create a token for it \
                 (`calseg-server token create --node {node}`)"
            ),
        ));
    }
    let (name, csr) = (node.to_owned(), csr_pem.to_owned());
    state
        .store(move |s| s.upsert_pending_node(&name, &csr, now))
        .await?;
    let Some(glob) = state.auto_approve.iter().find(|g| g.matches(node)) else {
        return Ok(None);
    };
    let by = format!("auto:{}", glob.as_str());
    let (name, approver) = (node.to_owned(), by.clone());
    state
        .store(move |s| s.set_node_state(&name, NodeState::Approved, &approver, now))
        .await?;
    Ok(Some(by))
}

async fn deny(state: &AppState, node: &str, failure: &ApiFailure) {
    if failure.status.is_client_error() {
        state.metrics.denied(&failure.kind);
    }
    state
        .audit(
            node,
            AuditAction::Enroll,
            node,
            AuditOutcome::Denied,
            format!("{}: {}", failure.kind, failure.message),
        )
        .await;
}
