//! The one place where errors become HTTP status codes and `ApiError` bodies: the domain's
//! [`ControlError`] by its class, and the refusals of the HTTP layer itself.

use crate::pki::CsrError;
use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calseg_api::error::ApiError;
use calseg_control::{Class, ControlError};

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

impl From<ControlError> for ApiFailure {
    /// The one mapping of the domain's error classes to HTTP statuses.
    fn from(error: ControlError) -> Self {
        let status = match error.class {
            Class::Invalid => StatusCode::BAD_REQUEST,
            Class::Forbidden => StatusCode::FORBIDDEN,
            Class::NotFound => StatusCode::NOT_FOUND,
            Class::Conflict => StatusCode::CONFLICT,
            Class::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Class::Busy => StatusCode::TOO_MANY_REQUESTS,
            Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Class::Upstream => StatusCode::BAD_GATEWAY,
            Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            kind: error.kind,
            message: error.message,
            retry_after: error.retry_after,
        }
    }
}

impl From<CsrError> for ApiFailure {
    fn from(error: CsrError) -> Self {
        ControlError::from(error).into()
    }
}

impl From<StoreError> for ApiFailure {
    fn from(error: StoreError) -> Self {
        ControlError::from(error).into()
    }
}

impl From<tokio::task::JoinError> for ApiFailure {
    fn from(error: tokio::task::JoinError) -> Self {
        ControlError::from(error).into()
    }
}
