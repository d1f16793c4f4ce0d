//! The calls an enrolled node makes with its fleet certificate: its manifest, certificates for
//! its identities, reports, and renewal of its fleet certificate. Each first checks the node is
//! approved and the certificate is the one most recently issued to it.

use super::caller::NodeCaller;
use super::errors::ApiFailure;
use super::limit::InFlight;
use super::long_poll::{Woken, jittered_retry_after, wait_for_change};
use super::state::AppState;
use crate::manifest::{etcd_user_for, manifest_for};
use crate::metrics::{IssuedKind, LongPollWait};
use crate::store::{AuditAction, AuditOutcome, IssuedRecord, NewAuditEntry, NodeRecord, NodeState};
use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calseg_api::certificates::{SignRequest, SignResponse};
use calseg_api::enroll::{EnrollResponse, FleetRenewRequest};
use calseg_api::manifest::Manifest;
use calseg_api::paths;
use calseg_api::report::{IdentityStatus, Report};
use calseg_control::signing_guard::ensure_owned;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Refuses nodes that are not approved (a revoked one with its own kind,
/// [`calseg_api::error::NODE_REVOKED`]), and fleet certificates other than the current one;
/// refusals are counted. Returns the node's record.
pub(super) async fn authorize(
    state: &AppState,
    caller: &NodeCaller,
) -> Result<NodeRecord, ApiFailure> {
    check_caller(state, caller).await.inspect_err(|failure| {
        if failure.status.is_client_error() {
            state.metrics.denied(&failure.kind);
        }
    })
}

async fn check_caller(state: &AppState, caller: &NodeCaller) -> Result<NodeRecord, ApiFailure> {
    let name = caller.name.clone();
    // Every node call passes here: read the node inline when the store allows it.
    let record = state.control.store_read(move |s| s.node(&name)).await?;
    let Some(record) = record else {
        return Err(ApiFailure::forbidden(
            "unknown_node",
            &format!("node {} is not enrolled", caller.name),
        ));
    };
    if record.state == NodeState::Revoked {
        return Err(ApiFailure::forbidden(
            calseg_api::error::NODE_REVOKED,
            &format!(
                "node {} was revoked by an operator: its etcd identities are gone; to bring it \
                 back, re-enroll it with a new node token (`calseg-server token create --node {}`, \
                 then on the node `calseg-agent enroll --force --token ...`)",
                caller.name, caller.name
            ),
        ));
    }
    if record.state != NodeState::Approved {
        return Err(ApiFailure::forbidden(
            "node_not_approved",
            &format!(
                "node {} is {}: the server refuses it; an operator decides (`calseg-server nodes list`)",
                caller.name, record.state
            ),
        ));
    }
    let current = record.fleet_cert.as_ref().map(|c| c.serial.as_str());
    if current != Some(caller.serial.as_str()) {
        return Err(ApiFailure::forbidden(
            "fleet_certificate_superseded",
            &format!(
                "this fleet certificate (serial {}) is no longer node {}'s current one",
                caller.serial, caller.name
            ),
        ));
    }
    Ok(record)
}

/// The query of `GET /v1/manifest`.
#[derive(Debug, Default, Deserialize)]
pub struct ManifestQuery {
    /// Long-poll: seconds to wait for a change when `If-None-Match` is current (capped).
    pub wait: Option<u64>,
}

/// The manifest the policy for `node` in enrollment `generation` gives it (during a rollout in
/// waves, the one its wave says), stamped with the policy revision.
fn current_manifest(state: &AppState, node: &str, generation: u32) -> Option<Manifest> {
    let (policy, revision) = state.control.policy_for(node);
    let mut manifest = manifest_for(&policy, node, generation, &state.control.etcd_ca_bundle_pem)?;
    manifest.policy_revision = revision;
    Some(manifest)
}

fn no_identities(node: &str) -> ApiFailure {
    ApiFailure::not_found(
        "no_identities",
        &format!("the policy gives node {node} no component"),
    )
}

fn etag_of(manifest: &Manifest) -> Result<(String, HeaderValue), ApiFailure> {
    let etag = format!("\"{}\"", manifest.revision);
    let value = HeaderValue::from_str(&etag)
        .map_err(|_| ApiFailure::internal("revision is not a valid header value"))?;
    Ok((etag, value))
}

fn fresh(manifest: &Manifest) -> Result<Response, ApiFailure> {
    let (_, etag) = etag_of(manifest)?;
    Ok(([(header::ETAG, etag)], Json(manifest)).into_response())
}

/// GET the node's manifest; 304 when the caller already has this revision. With `?wait=N` and
/// a current `If-None-Match`, parks until the manifest changes (200) or N seconds pass (304);
/// see `long_poll`.
pub async fn manifest(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Query(query): Query<ManifestQuery>,
    Extension(in_flight): Extension<InFlight>,
    headers: HeaderMap,
) -> Result<Response, ApiFailure> {
    let generation = authorize(&state, &caller).await?.generation;
    // Subscribe before computing: a reload from here on wakes the wait below.
    let epochs = state.control.watch_policy();
    let node = caller.name.as_str();
    let manifest = current_manifest(&state, node, generation).ok_or_else(|| no_identities(node))?;
    let (etag, etag_value) = etag_of(&manifest)?;
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if !unchanged {
        return fresh(&manifest);
    }
    let not_modified = (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]);
    let wait = query.wait.unwrap_or(0).min(paths::MAX_LONG_POLL_SECS);
    if wait == 0 {
        return Ok(not_modified.into_response());
    }
    let Ok(_parked) = Arc::clone(&state.long_polls).try_acquire_owned() else {
        // Too many parked already: answer now and say when to come back.
        let mut response = not_modified.into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(jittered_retry_after().as_secs()),
        );
        return Ok(response);
    };
    in_flight.release();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let revision = manifest.revision;
    let parked = std::time::Instant::now();
    let woken = wait_for_change(
        epochs,
        deadline,
        || current_manifest(&state, node, generation),
        |m| m.revision == revision,
    )
    .await;
    let mut response = match woken {
        Woken::Deadline => not_modified.into_response(),
        Woken::Changed(Some(manifest)) => fresh(&manifest).unwrap_or_else(|f| f.into_response()),
        Woken::Changed(None) => no_identities(node).into_response(),
    };
    // The park is not latency: the metrics count it apart.
    response
        .extensions_mut()
        .insert(LongPollWait(parked.elapsed()));
    Ok(response)
}

/// POST a CSR for one of the node's identities.
pub async fn certificates(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Json(request): Json<SignRequest>,
) -> Result<Json<SignResponse>, ApiFailure> {
    let generation = authorize(&state, &caller).await?.generation;
    let node = caller.name.as_str();
    let (policy, _) = state.control.policy_for(node);
    let Some(etcd_user) = etcd_user_for(&policy, node, generation, &request.component) else {
        let failure = ApiFailure::forbidden(
            "identity_not_assigned",
            &format!(
                "the policy gives node {node} no component {:?}; it may only request its own identities",
                request.component
            ),
        );
        deny(&state, node, &request.component, &failure).await;
        return Err(failure);
    };
    // Never a certificate for a user calseg does not own, whatever the policy renders.
    if let Err(failure) = ensure_owned(&state.control, &etcd_user).await {
        let failure = ApiFailure::from(failure);
        deny(&state, node, &etcd_user, &failure).await;
        return Err(failure);
    }
    let now = OffsetDateTime::now_utc();
    let issued = match state.control.etcd_ca.sign_client_csr(
        &request.csr_pem,
        &state.control.csr_rules,
        &etcd_user,
        policy.identity.lifetime,
        now,
    ) {
        Ok(issued) => issued,
        Err(error) => {
            let failure = ApiFailure::from(error);
            deny(&state, node, &etcd_user, &failure).await;
            return Err(failure);
        }
    };
    let record = IssuedRecord {
        serial: issued.serial_hex.clone(),
        cn: etcd_user.clone(),
        node: node.to_owned(),
        component: request.component.clone(),
        not_before: issued.not_before,
        not_after: issued.not_after,
        issued_at: now,
    };
    let entry = NewAuditEntry {
        at: now,
        actor: node.to_owned(),
        action: AuditAction::Issue,
        subject: etcd_user.clone(),
        outcome: AuditOutcome::Ok,
        detail: format!("serial {}", issued.serial_hex),
    };
    // One commit: a certificate handed out is always recorded with its audit entry.
    state
        .control
        .store(move |s| s.record_issued_audited(record, entry))
        .await?;
    state.metrics.issued(IssuedKind::Component);
    Ok(Json(SignResponse {
        cert_pem: issued.cert_pem,
        serial: issued.serial_hex,
        not_before: rfc3339(issued.not_before),
        not_after: rfc3339(issued.not_after),
    }))
}

/// POST the agent's report of a cycle.
pub async fn report(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Json(report): Json<Report>,
) -> Result<StatusCode, ApiFailure> {
    authorize(&state, &caller).await?;
    // Dates an operator sees are the ones this server issued, not the ones the node claims.
    let name = caller.name.clone();
    let issued = state
        .control
        .store(move |s| s.issued_for_node(&name))
        .await?;
    let report = crate::vouch::vouch(report, &caller.name, &issued);
    let name = caller.name.clone();
    let now = OffsetDateTime::now_utc();
    let stored = report.clone();
    state
        .control
        .store(move |s| s.record_report(&name, stored, now))
        .await?;
    // A manifest outside the node's own agent.toml limits: the policy (or whoever serves the
    // node) asked for something the host does not allow. The operator must see that.
    if report
        .identities
        .iter()
        .any(|i| i.status == IdentityStatus::Refused)
    {
        tracing::warn!(node = %caller.name, revision = %report.revision, "the node refused its manifest: it is outside the node's agent.toml limits");
        state
            .control
            .audit(
                &caller.name,
                AuditAction::Report,
                &caller.name,
                AuditOutcome::Denied,
                format!(
                    "manifest {} refused by the node's agent.toml limits: {}",
                    report.revision,
                    report.errors.join("; ")
                ),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// POST a CSR to renew the caller's fleet certificate.
pub async fn fleet_renew(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Json(request): Json<FleetRenewRequest>,
) -> Result<Json<EnrollResponse>, ApiFailure> {
    authorize(&state, &caller).await?;
    let now = OffsetDateTime::now_utc();
    let issued = state
        .control
        .fleet_ca
        .sign_agent_csr(
            &request.csr_pem,
            &state.control.csr_rules,
            &caller.name,
            state.control.fleet_lifetime,
            now,
        )
        .map_err(|error| {
            let failure = ApiFailure::from(error);
            if failure.status.is_client_error() {
                state.metrics.denied(&failure.kind);
            }
            failure
        })?;
    let (name, serial, key, not_after) = (
        caller.name.clone(),
        issued.serial_hex.clone(),
        issued.key_fingerprint.clone(),
        issued.not_after,
    );
    state
        .control
        .store(move |s| s.record_fleet_cert(&name, &serial, &key, not_after, now))
        .await?;
    state.metrics.issued(IssuedKind::Fleet);
    state
        .control
        .audit(
            &caller.name,
            AuditAction::Issue,
            &caller.name,
            AuditOutcome::Ok,
            format!("fleet certificate renewed: {}", issued.serial_hex),
        )
        .await;
    Ok(Json(EnrollResponse::Enrolled {
        cert_pem: issued.cert_pem,
        fleet_ca_pem: state.control.fleet_ca.cert_pem().to_owned(),
    }))
}

async fn deny(state: &AppState, node: &str, subject: &str, failure: &ApiFailure) {
    if failure.status.is_client_error() {
        state.metrics.denied(&failure.kind);
    }
    tracing::warn!(%node, %subject, kind = %failure.kind, "certificate request refused");
    state
        .control
        .audit(
            node,
            AuditAction::Issue,
            subject,
            AuditOutcome::Denied,
            format!("{}: {}", failure.kind, failure.message),
        )
        .await;
}

/// RFC 3339 text of a time (UTC, to the second: calseg_api::when).
pub fn rfc3339(at: OffsetDateTime) -> String {
    calseg_api::when::rfc3339(&at)
}
