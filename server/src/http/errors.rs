//! The one place where errors become HTTP status codes and `ApiError` bodies.

use crate::pki::CsrError;
use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calseg_api::error::ApiError;

/// A refused or failed call: status, stable kind, message.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub kind: String,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds): when a refused caller may try again.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiFailure {
    pub fn new(status: StatusCode, kind: &str, message: &str) -> Self {
        Self {
            status,
            kind: kind.to_owned(),
            message: message.to_owned(),
            retry_after: None,
        }
    }
    pub fn bad_request(kind: &str, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }
    pub fn forbidden(kind: &str, message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, kind, message)
    }
    pub fn unauthorized(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "client_certificate_required",
            message,
        )
    }
    pub fn not_found(kind: &str, message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }
    pub fn internal(message: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = ApiError {
            kind: self.kind,
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(after.as_secs().max(1)),
            );
        }
        response
    }
}

impl From<CsrError> for ApiFailure {
    fn from(error: CsrError) -> Self {
        let status = match &error {
            CsrError::WrongCommonName { .. } => StatusCode::FORBIDDEN,
            CsrError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            e if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.kind(), &error.to_string())
    }
}

impl From<StoreError> for ApiFailure {
    fn from(error: StoreError) -> Self {
        let status = match error.kind() {
            "malformed_token" | "invalid_scope" | "invalid_ttl" | "invalid_serial" => {
                StatusCode::BAD_REQUEST
            }
            "unknown_token"
            | "bad_secret"
            | "token_expired"
            | "token_exhausted"
            | "node_not_allowed"
            | "token_already_used_by_node"
            | "node_known"
            | "node_refused" => StatusCode::FORBIDDEN,
            "unknown_node" | "unknown_lease" => StatusCode::NOT_FOUND,
            "lease_not_held" => StatusCode::FORBIDDEN,
            "lease_life_exceeded" => StatusCode::CONFLICT,
            "restart_budget_full" => StatusCode::TOO_MANY_REQUESTS,
            "invalid_transition" | "duplicate_serial" | "store_not_empty" => StatusCode::CONFLICT,
            // etcd out of reach or too busy from this replica: another replica may do better,
            // and agents fail over on 5xx.
            "store_unavailable" | "store_contention" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut failure = Self::new(status, error.kind(), &error.to_string());
        if let StoreError::BudgetFull {
            retry_after_hint, ..
        } = error
        {
            failure.retry_after = Some(retry_after_hint);
        }
        failure
    }
}

impl From<tokio::task::JoinError> for ApiFailure {
    fn from(_: tokio::task::JoinError) -> Self {
        Self::internal("a store operation was interrupted")
    }
}
