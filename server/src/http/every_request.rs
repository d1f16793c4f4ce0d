//! What every API request goes through before its route's handler, in one middleware (one
//! layer per route instead of three: each layer costs a boxed service clone and a boxed future
//! per request): its latency recorded under its route template, the in-flight limit, and
//! plain-text refusals rewritten as calseg's JSON errors. In that order from the outside: a
//! refusal by the limit is counted, and the metrics see the status the caller gets.

use super::limit;
use super::metrics_listener::record_request;
use super::rejections::as_api_error;
use super::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// The middleware (`from_fn_with_state`).
pub async fn every_request(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = match limit::admit(&state, request) {
        Ok(request) => match super::caller::still_trusted(&state, &request) {
            Ok(()) => next.run(request).await,
            Err(refused) => refused.into_response(),
        },
        Err(refused) => refused.into_response(),
    };
    let response = as_api_error(response, &method, uri.path()).await;
    record_request(
        &state.metrics,
        route.as_ref().map(MatchedPath::as_str),
        &response,
        started,
    );
    response
}
