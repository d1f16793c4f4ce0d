//! The plain-HTTP `/metrics` listener, and the record of every API request's latency.

use super::state::AppState;
use crate::metrics::{Format, LongPollWait, Metrics, Scrape, live_identities};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
            let nodes = s.nodes()?;
            let expiries = live_identities(&nodes, |n| s.issued_for_node(n))?;
            Ok((nodes, expiries))
        })
        .await;
    match read {
        Ok((nodes, expiries)) => {
            let rollout = crate::rollout::status_of_nodes(&state.control, &nodes)
                .await
                .ok();
            let ca = calseg_control::ca_rotation::status(&state.control, now)
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
