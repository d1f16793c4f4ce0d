//! Enrollment and the fleet CA: a node proves itself with a token, an operator's approval or an
//! auto-approve glob, and receives a fleet certificate signed from its own CSR.

use super::Peer;
use super::errors::ApiFailure;
use super::pending::store_op;
use super::state::AppState;
use crate::metrics::IssuedKind;
use crate::store::{AuditAction, AuditOutcome, NodeState, PendingAsk, PendingKey};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use calseg_api::enroll::{EnrollRequest, EnrollResponse, FleetCa};
use calseg_control::signing_guard;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use time::OffsetDateTime;

/// Seconds a pending agent waits before asking again.
const PENDING_RETRY_SECS: u64 = 10;

/// GET the fleet CA, for agents to check against their pinned hash.
pub async fn fleet_ca(State(state): State<Arc<AppState>>) -> Json<FleetCa> {
    Json(FleetCa {
        fleet_ca_pem: state.control.fleet_ca.cert_pem().to_owned(),
    })
}

/// POST an enrollment. Rate limited per source address first (`enroll_limit`).
pub async fn enroll(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    Json(request): Json<EnrollRequest>,
) -> Result<Response, ApiFailure> {
    // Without a connection (tests driving the router directly): one shared bucket.
    let source = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    if let Err(wait) = state
        .enroll_limiter
        .check(source, std::time::Instant::now())
    {
        // Counted, not audited: a flood must not flood the audit log.
        let mut failure = ApiFailure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "enroll_rate_limited",
            &format!(
                "too many enrollment requests from {source} ([api] enroll_burst, \
                 enroll_per_minute); retry in {}s",
                wait.as_secs()
            ),
        );
        failure.retry_after = Some(wait);
        state.metrics.denied(&failure.kind);
        return Err(failure);
    }
    let node = request.node.clone();
    crate::policy::check_node_name(&node)
        .map_err(|message| ApiFailure::bad_request("invalid_node_name", &message))?;
    // No fleet certificate for a node whose etcd users calseg does not own (nor a used token).
    if let Err(failure) = signing_guard::ensure_node_owned(&state.control, &node).await {
        let failure = ApiFailure::from(failure);
        deny(&state, &node, &failure, source).await;
        // The caller is anonymous: which etcd users exist, and their roles, are for the audit
        // log, not for whoever can reach this route.
        let mut answer = failure;
        if answer.kind == signing_guard::NOT_OWNED {
            answer.message = format!(
                "node {node} cannot enroll: calseg does not own one of the etcd users the \
                 policy gives it; an administrator finds which, and why, in the audit log"
            );
        }
        return Err(answer);
    }
    let now = OffsetDateTime::now_utc();
    // Check and sign the CSR first: a bad CSR must not consume a token.
    let issued = match state.control.fleet_ca.sign_agent_csr(
        &request.csr_pem,
        &state.control.csr_rules,
        &node,
        state.control.fleet_lifetime,
        now,
    ) {
        Ok(issued) => issued,
        Err(error) => {
            let failure = ApiFailure::from(error);
            deny(&state, &node, &failure, source).await;
            return Err(failure);
        }
    };
    let approved_by = match &request.token {
        Some(token) => {
            let (token, name) = (token.clone(), node.clone());
            match state
                .control
                .store(move |s| s.redeem_token(&token, &name, now))
                .await
            {
                Ok(used) => format!("token:{}", used.token_id),
                Err(failure) => {
                    let failure = ApiFailure::from(failure);
                    deny(&state, &node, &failure, source).await;
                    return Err(failure);
                }
            }
        }
        None => match approve_without_token(&state, &node, &request.csr_pem, source, now).await {
            Ok(Some(by)) => by,
            Ok(None) => {
                let body = EnrollResponse::Pending {
                    retry_after_secs: PENDING_RETRY_SECS,
                };
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
            }
            Err(failure) => {
                deny(&state, &node, &failure, source).await;
                return Err(failure);
            }
        },
    };
    let (name, serial, not_after) = (node.clone(), issued.serial_hex.clone(), issued.not_after);
    let key = issued.key_fingerprint.clone();
    state
        .control
        .store(move |s| s.record_fleet_cert(&name, &serial, &key, not_after, now))
        .await?;
    state
        .control
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
    state.control.poke_reconciler();
    Ok(Json(EnrollResponse::Enrolled {
        cert_pem: issued.cert_pem,
        fleet_ca_pem: state.control.fleet_ca.cert_pem().to_owned(),
    })
    .into_response())
}

/// Without a token: `Some(approver)` when the node may have its certificate now, `None` when it
/// must wait for an operator. A new pending request is audited with its key and source; a
/// request with another key than the pending one is refused (409) and audited by the caller.
async fn approve_without_token(
    state: &AppState,
    node: &str,
    csr_pem: &str,
    source: IpAddr,
    now: OffsetDateTime,
) -> Result<Option<String>, ApiFailure> {
    let fingerprint = crate::pki::csr_key_fingerprint(csr_pem, &state.control.csr_rules, node)?;
    let name = node.to_owned();
    let existing = state.control.store(move |s| s.node(&name)).await?;
    if let Some(record) = &existing
        && record.state == NodeState::Approved
    {
        // Approved by an operator while pending: only the key it approved gets a certificate.
        if record.pending_key.as_ref().map(|k| &k.fingerprint) == Some(&fingerprint) {
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
    let ask = PendingAsk {
        csr_pem: csr_pem.to_owned(),
        key: PendingKey {
            fingerprint: fingerprint.clone(),
            source: source.to_string(),
        },
        max_pending: state.enrollment.max_pending,
    };
    let name = node.to_owned();
    store_op(state, move |s| s.upsert_pending_node(&name, &ask, now)).await?;
    if existing.is_none() {
        tracing::info!(%node, key = %fingerprint, %source, "enrollment pending approval");
        state
            .control
            .audit(
                node,
                AuditAction::Enroll,
                node,
                AuditOutcome::Ok,
                format!("pending approval: key {fingerprint} from {source}"),
            )
            .await;
    }
    let Some(glob) = state.control.auto_approve.iter().find(|g| g.matches(node)) else {
        return Ok(None);
    };
    let by = format!("auto:{}", glob.as_str());
    let (name, approver) = (node.to_owned(), by.clone());
    state
        .control
        .store(move |s| s.set_node_state(&name, NodeState::Approved, &approver, now))
        .await?;
    Ok(Some(by))
}

async fn deny(state: &AppState, node: &str, failure: &ApiFailure, source: IpAddr) {
    if failure.status.is_client_error() {
        state.metrics.denied(&failure.kind);
    }
    state
        .control
        .audit(
            node,
            AuditAction::Enroll,
            node,
            AuditOutcome::Denied,
            format!("{}: {} (from {source})", failure.kind, failure.message),
        )
        .await;
}
