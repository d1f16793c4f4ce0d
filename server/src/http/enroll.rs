//! The enrollment route and the fleet CA: the per-source rate limit, then
//! `calseg_control::enrollment`; refusals are counted here and told to the anonymous caller
//! without the audit log's detail.

use super::Peer;
use super::errors::ApiFailure;
use super::state::AppState;
use crate::metrics::IssuedKind;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use calseg_api::enroll::{EnrollRequest, EnrollResponse, FleetCa};
use calseg_control::enrollment::{self, EnrollAsk, Enrolled};
use calseg_control::signing_guard;
use calseg_control::{CallFailure, ControlError};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use time::OffsetDateTime;

/// Seconds a pending agent waits before asking again.
const PENDING_RETRY_SECS: u64 = 10;

/// GET the fleet CA, for agents to check against their pinned hash.
pub async fn fleet_ca(State(state): State<Arc<AppState>>) -> Json<FleetCa> {
    Json(FleetCa {
        fleet_ca_pem: state.control.fleet_cas().bundle_pem(),
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
    let ask = EnrollAsk {
        node: request.node,
        csr_pem: request.csr_pem,
        token: request.token,
        source,
        max_pending: state.enrollment.max_pending,
    };
    let node = ask.node.clone();
    match enrollment::enroll(&state.control, ask, OffsetDateTime::now_utc()).await {
        Ok(Enrolled::Certificate { cert_pem }) => {
            state.metrics.issued(IssuedKind::Fleet);
            Ok(Json(EnrollResponse::Enrolled {
                cert_pem,
                fleet_ca_pem: state.control.fleet_cas().bundle_pem(),
            })
            .into_response())
        }
        Ok(Enrolled::Pending) => {
            let body = EnrollResponse::Pending {
                retry_after_secs: PENDING_RETRY_SECS,
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(CallFailure::Failed(error)) => Err(error.into()),
        Err(CallFailure::Refused(error)) => {
            if error.class.is_callers() {
                state.metrics.denied(&error.kind);
            }
            Err(for_anonymous_caller(error, &node).into())
        }
    }
}

/// The refusal an anonymous caller sees: which etcd users exist, and their roles, are for the
/// audit log, not for whoever can reach this route.
fn for_anonymous_caller(mut error: ControlError, node: &str) -> ControlError {
    if error.kind == signing_guard::NOT_OWNED {
        error.message = format!(
            "node {node} cannot enroll: calseg does not own one of the etcd users the policy \
             gives it; an administrator finds which, and why, in the audit log"
        );
    }
    error
}
