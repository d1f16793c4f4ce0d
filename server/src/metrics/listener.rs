//! The plain-HTTP `/metrics` listener, and the middleware that times every API request.

use super::{CONTENT_TYPE, Metrics};
use crate::http::AppState;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
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

async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    let now = OffsetDateTime::now_utc();
    // Restart leases live in the store; count the live ones at scrape time, like the nodes.
    if let Ok(leases) = state.store(move |s| s.live_leases(now)).await {
        state.metrics.set_leases_held(leases.len() as u64);
    }
    match state.store(|s| s.nodes()).await {
        Ok(nodes) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], {
            let mut text = state.metrics.render(&nodes, now);
            if let Ok(rollout) = crate::http::rollout_status_of_nodes(&state, &nodes).await {
                text.push_str(&crate::metrics::Metrics::render_rollout(&rollout));
            }
            text
        })
            .into_response(),
        Err(failure) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store could not be read: {}\n", failure.message),
        )
            .into_response(),
    }
}

/// Axum middleware (`from_fn_with_state`) recording each API request's latency under its route
/// template, e.g. `/v1/admin/nodes/{node}/{action}`.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
