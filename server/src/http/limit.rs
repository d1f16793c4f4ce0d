//! Load shedding: at most `[api] max_in_flight` requests are worked on at once; one more is
//! refused at once with 429 `overloaded` and a jittered `Retry-After`, instead of queueing
//! without bound. A manifest long-poll gives its permit back while it is parked (it costs a
//! task and a socket, not work), so parked requests never starve the others; `/v1/health`
//! is exempt so liveness checks tell "busy" from "dead".

use super::errors::ApiFailure;
use super::long_poll::jittered_retry_after;
use super::state::AppState;
use axum::extract::Request;
use axum::http::StatusCode;
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

/// Admits `request` within `[api] max_in_flight` (the health check always), handing it the
/// permit it holds until it answers (a long-poll gives it back when it parks); beyond the
/// limit, the refusal to answer at once.
pub fn admit(state: &AppState, mut request: Request) -> Result<Request, ApiFailure> {
    if request.uri().path() == paths::HEALTH {
        return Ok(request);
    }
    let Ok(permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        return Err(overloaded());
    };
    request
        .extensions_mut()
        .insert(InFlight(Arc::new(Mutex::new(Some(permit)))));
    Ok(request)
}

pub fn overloaded() -> ApiFailure {
    let mut failure = ApiFailure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "overloaded",
        "the server is working on as many requests as it takes at once ([api] max_in_flight); retry after the Retry-After delay",
    );
    failure.retry_after = Some(jittered_retry_after());
    failure
}
