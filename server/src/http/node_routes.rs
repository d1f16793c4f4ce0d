//! The routes of an enrolled node's calls with its fleet certificate: its manifest (with the
//! long-poll), certificates for its identities, reports, and renewal of its fleet certificate.
//! Each first checks the node is approved and shows its current certificate; the decisions are
//! `calseg_control::node_calls`', the counters and the HTTP answers are here.

use super::caller::NodeCaller;
use super::errors::ApiFailure;
use super::limit::InFlight;
use super::long_poll::{Woken, jittered_retry_after, wait_for_change};
use super::state::AppState;
use crate::metrics::{IssuedKind, LongPollWait};
use crate::store::NodeStanding;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calseg_api::certificates::{SignRequest, SignResponse};
use calseg_api::enroll::{EnrollResponse, FleetRenewRequest};
use calseg_api::paths;
use calseg_api::report::Report;
use calseg_api::when::rfc3339;
use calseg_control::CallFailure;
use calseg_control::manifest_cache::Served;
use calseg_control::node_calls;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Refuses nodes that are not approved and fleet certificates other than the current one
/// (`calseg_control::node_calls::authorize`); refusals are counted. Returns the node's record.
pub(super) async fn authorize(
    state: &AppState,
    caller: &NodeCaller,
) -> Result<NodeStanding, ApiFailure> {
    node_calls::authorize(&state.control, &caller.name, &caller.serial)
        .await
        .map_err(|error| {
            if error.class.is_callers() {
                state.metrics.denied(&error.kind);
            }
            error.into()
        })
}

/// The query of `GET /v1/manifest`.
#[derive(Debug, Default, Deserialize)]
pub struct ManifestQuery {
    /// Long-poll: seconds to wait for a change when `If-None-Match` is current (capped).
    pub wait: Option<u64>,
}

fn no_identities(node: &str) -> ApiFailure {
    ApiFailure::not_found(
        "no_identities",
        &format!("the policy gives node {node} no component"),
    )
}

fn etag_of(manifest: &Served) -> Result<HeaderValue, ApiFailure> {
    HeaderValue::from_str(&manifest.etag)
        .map_err(|_| ApiFailure::internal("revision is not a valid header value"))
}

/// A 200 with the manifest's JSON as it was serialized once for this policy epoch.
fn fresh(manifest: &Served) -> Result<Response, ApiFailure> {
    let etag = etag_of(manifest)?;
    let json = HeaderValue::from_static("application/json");
    let body = Bytes::from_owner(Arc::clone(&manifest.json));
    Ok(([(header::CONTENT_TYPE, json), (header::ETAG, etag)], body).into_response())
}

/// The request's `If-None-Match`, taken alone (not a copy of every header).
pub struct IfNoneMatch(Option<HeaderValue>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(header::IF_NONE_MATCH).cloned()))
    }
}

/// GET the node's manifest; 304 when the caller already has this revision. With `?wait=N` and
/// a current `If-None-Match`, parks until the manifest changes (200) or N seconds pass (304);
/// see `long_poll`. The node's standing is read on every pull; the manifest comes from
/// `calseg_control::manifest_cache`.
pub async fn manifest(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Query(query): Query<ManifestQuery>,
    Extension(in_flight): Extension<InFlight>,
    IfNoneMatch(known): IfNoneMatch,
) -> Result<Response, ApiFailure> {
    let generation = authorize(&state, &caller).await?.generation;
    // Subscribe before computing: a reload from here on wakes the wait below.
    let epochs = state.control.watch_policy();
    let node = caller.name.as_str();
    let manifest = node_calls::served_manifest(&state.control, node, generation)?
        .ok_or_else(|| no_identities(node))?;
    let unchanged = known
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == manifest.etag));
    if !unchanged {
        return fresh(&manifest);
    }
    let not_modified = (
        StatusCode::NOT_MODIFIED,
        [(header::ETAG, etag_of(&manifest)?)],
    );
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
    let parked = std::time::Instant::now();
    let woken = wait_for_change(
        epochs,
        deadline,
        || node_calls::served_manifest(&state.control, node, generation).transpose(),
        |now| matches!(now, Ok(now) if now.revision == manifest.revision),
    )
    .await;
    let mut response = match woken {
        Woken::Deadline => not_modified.into_response(),
        Woken::Changed(Some(Ok(manifest))) => {
            fresh(&manifest).unwrap_or_else(IntoResponse::into_response)
        }
        Woken::Changed(Some(Err(error))) => ApiFailure::from(error).into_response(),
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
    let now = OffsetDateTime::now_utc();
    let issued = node_calls::sign_identity(
        &state.control,
        &caller.name,
        generation,
        &request.component,
        &request.csr_pem,
        now,
    )
    .await
    .map_err(|failure| counted(&state, failure))?;
    state.metrics.issued(IssuedKind::Component);
    Ok(Json(SignResponse {
        cert_pem: issued.cert_pem,
        serial: issued.serial_hex,
        not_before: rfc3339(&issued.not_before),
        not_after: rfc3339(&issued.not_after),
        issuer: Some(issued.issuer_fingerprint),
    }))
}

/// POST the agent's report of a cycle.
pub async fn report(
    State(state): State<Arc<AppState>>,
    caller: NodeCaller,
    Json(report): Json<Report>,
) -> Result<StatusCode, ApiFailure> {
    authorize(&state, &caller).await?;
    node_calls::take_report(
        &state.control,
        &caller.name,
        report,
        OffsetDateTime::now_utc(),
    )
    .await?;
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
    let issued = node_calls::renew_fleet(&state.control, &caller.name, &request.csr_pem, now)
        .await
        .map_err(|failure| counted(&state, failure))?;
    state.metrics.issued(IssuedKind::Fleet);
    Ok(Json(EnrollResponse::Enrolled {
        cert_pem: issued.cert_pem,
        fleet_ca_pem: state.control.fleet_cas().bundle_pem(),
    }))
}

/// A node call's failure as the API answers it; a refusal of the caller is counted.
fn counted(state: &AppState, failure: CallFailure) -> ApiFailure {
    match failure {
        CallFailure::Refused(error) => {
            if error.class.is_callers() {
                state.metrics.denied(&error.kind);
            }
            error.into()
        }
        CallFailure::Failed(error) => error.into(),
    }
}
