//! The plain-HTTP `/metrics` listener, and the record of every API request's latency.

use super::state::AppState;
use crate::metrics::{Format, LongPollWait, Metrics, Scrape, live_identities};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use calseg_control::ca_rotation;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

/// Label of requests that matched no route (their paths are not labels: unbounded).
const UNMATCHED: &str = "unmatched";

/// Serves `GET /metrics` on `listener` until the task is dropped. No TLS and no client
/// certificate: bind it to loopback or a monitoring network (`[metrics] listen`).
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> Result<()> {
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(state);
    axum::serve(listener, router)
        .await
        .context("the metrics listener stopped")
}

async fn scrape(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let now = OffsetDateTime::now_utc();
    // Restart leases live in the store; count the live ones at scrape time, like the nodes.
    if let Ok(leases) = state.control.store(move |s| s.live_leases(now)).await {
        state.metrics.set_leases_held(leases.len() as u64);
    }
    let read = state
        .control
        .store(|s| {
            // Each node's certificates once: for the expiry series and the CA rotation.
            let with_issued = ca_rotation::read_nodes_with_issued(s)?;
            let nodes: Vec<_> = with_issued.iter().map(|(n, _)| n.clone()).collect();
            let by_name: std::collections::HashMap<&str, &Vec<_>> = with_issued
                .iter()
                .map(|(n, issued)| (n.name.as_str(), issued))
                .collect();
            let expiries = live_identities(&nodes, |name| {
                Ok(by_name.get(name).map(|i| (*i).clone()).unwrap_or_default())
            })?;
            Ok((nodes, with_issued, expiries))
        })
        .await;
    match read {
        Ok((nodes, with_issued, expiries)) => {
            let rollout = crate::rollout::status_of_nodes(&state.control, &nodes)
                .await
                .ok();
            let ca = ca_rotation::status_of(&state.control, Some(&with_issued), now)
                .await
                .ok();
            let scrape = Scrape {
                expiries: &expiries,
                rollout: rollout.as_ref(),
                ca: ca.as_ref(),
                issuance_commits: state.control.issuance.commits(),
                ..Scrape::of(&nodes, now)
            };
            let text = state.metrics.render(&scrape, format);
            ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
        }
        Err(failure) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store could not be read: {}\n", failure.message),
        )
            .into_response(),
    }
}

/// Records one API request's latency under its route template (e.g.
/// `/v1/admin/nodes/{node}/{action}`, [`UNMATCHED`] for none), from `started`. A long-poll's
/// park (its [`LongPollWait`]) is not latency: it is taken out and counted apart.
pub fn record_request(
    metrics: &Metrics,
    route: Option<&str>,
    response: &Response,
    started: Instant,
) {
    let route = route.unwrap_or(UNMATCHED);
    let status = response.status().as_u16();
    let mut elapsed = started.elapsed();
    if let Some(LongPollWait(waited)) = response.extensions().get::<LongPollWait>().copied() {
        metrics.long_poll(route, status, waited);
        elapsed = elapsed.saturating_sub(waited);
    }
    metrics.request(route, status, elapsed.as_secs_f64());
}
