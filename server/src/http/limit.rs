//! Load shedding: at most `[api] max_in_flight` requests are worked on at once; one more is
//! refused at once with 429 `overloaded` and a jittered `Retry-After`, instead of queueing
//! without bound. A manifest long-poll gives its permit back while it is parked (it costs a
//! task and a socket, not work), so parked requests never starve the others; `/v1/health`
//! is exempt so liveness checks tell "busy" from "dead".

use super::errors::ApiFailure;
use super::long_poll::jittered_retry_after;
use super::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use calseg_api::paths;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedSemaphorePermit;

/// The in-flight permit of one request, in its extensions; [`InFlight::release`] hands it
/// back early.
#[derive(Clone)]
pub struct InFlight(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl InFlight {
    /// Returns the permit now (before parking); the request no longer counts as in flight.
    pub fn release(&self) {
        let permit = match self.0.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(permit);
    }
}

/// The middleware: takes a permit or refuses with 429.
pub async fn limit_in_flight(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == paths::HEALTH {
        return next.run(request).await;
    }
    let Ok(permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        return overloaded().into_response();
    };
    request
        .extensions_mut()
        .insert(InFlight(Arc::new(Mutex::new(Some(permit)))));
    next.run(request).await
}

/// The refusal: 429, `overloaded`, `Retry-After` of 1 to 5 seconds.
pub fn overloaded() -> ApiFailure {
    let mut failure = ApiFailure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "overloaded",
        "the server is working on as many requests as it takes at once ([api] max_in_flight); retry after the Retry-After delay",
    );
    failure.retry_after = Some(jittered_retry_after());
    failure
}
