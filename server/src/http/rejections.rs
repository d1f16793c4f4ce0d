//! Refusals made outside calseg's handlers, as calseg's JSON `ApiError`: axum's extractors
//! answer bad JSON (400), a JSON body of the wrong shape or with missing fields (422) and a
//! missing `Content-Type: application/json` (415) in plain text, tower-http's body limit a too
//! large body (413), the router an unknown route (404) or method (405), and the timeout layer a
//! slow request (408) with an empty body. The middleware rewrites every such client error that
//! is not JSON already into the same shape as every other error: a stable `kind` and a message
//! that says what was wrong and what to send instead.

use super::errors::ApiFailure;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calseg_api::paths;

/// How much of a plain-text rejection's body is read (axum's are one line).
const MAX_DETAIL_BYTES: usize = 4096;
/// How many characters of that detail (which may quote the caller's input) the message keeps.
const MAX_DETAIL_CHARS: usize = 300;

/// Passes JSON answers and successes through, rewrites the rest (`response` answered
/// `method path`); `super::every_request` calls it on every API response.
pub async fn as_api_error(response: Response, method: &Method, path: &str) -> Response {
    if !response.status().is_client_error() || is_json(&response) {
        return response;
    }
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let detail = match axum::body::to_bytes(response.into_body(), MAX_DETAIL_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let mut rewritten = rejection(status, method, path, &detail).into_response();
    if let Some(after) = retry_after {
        rewritten.headers_mut().insert(header::RETRY_AFTER, after);
    }
    rewritten
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The `ApiFailure` for a plain client error `status` of `method path` whose body said `detail`.
pub fn rejection(
    status: StatusCode,
    method: &axum::http::Method,
    path: &str,
    detail: &str,
) -> ApiFailure {
    let detail = printable(detail);
    let because = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    let (kind, message) = match status {
        StatusCode::BAD_REQUEST => (
            "malformed_request",
            format!("the request could not be read{because}: send a well-formed JSON body"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            format!(
                "the request body is larger than the {} bytes the API accepts: send a smaller one",
                paths::MAX_BODY_BYTES
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_content_type",
            format!(
                "the request body must be JSON, sent with `Content-Type: application/json`{because}"
            ),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "invalid_request_body",
            format!(
                "the JSON body does not have the fields and types this route takes{because}: \
                 fix the named field"
            ),
        ),
        StatusCode::NOT_FOUND => (
            "unknown_route",
            format!(
                "there is no API route {method} {}: check the server address and calseg's version",
                printable(path)
            ),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("{} does not take {method}", printable(path)),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than the server allows: retry".to_owned(),
        ),
        other => (
            "client_error",
            format!("the request was refused ({other}){because}"),
        ),
    };
    ApiFailure::new(status, kind, &message)
}

/// `text` with control characters escaped, cut to [`MAX_DETAIL_CHARS`] characters.
fn printable(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_DETAIL_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;

    /// A plain-text answer, as axum's extractors give.
    fn plain(status: StatusCode, text: &'static str) -> Response {
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = status;
        response
    }

    #[test]
    fn each_plain_rejection_gets_a_kind_and_says_what_was_wrong() {
        let post = Method::POST;
        let cases = [
            (
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "expected value",
            ),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "bytes the API accepts",
            ),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
                "Content-Type: application/json",
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_body",
                "missing field",
            ),
            (StatusCode::NOT_FOUND, "unknown_route", "POST /v1/x"),
        ];
        for (status, kind, says) in cases {
            let failure = rejection(
                status,
                &post,
                "/v1/x",
                "missing field `csr_pem`; expected value",
            );
            assert_eq!((failure.status, failure.kind.as_str()), (status, kind));
            assert!(failure.message.contains(says), "{}", failure.message);
        }
    }

    #[test]
    fn control_characters_are_escaped_and_long_details_cut() {
        let failure = rejection(
            StatusCode::BAD_REQUEST,
            &Method::POST,
            "/",
            &format!("\u{1b}]0;owned\u{7}\r\n{}", "x".repeat(1000)),
        );
        assert!(
            !failure.message.chars().any(char::is_control),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("\\u{1b}]0;owned"),
            "{}",
            failure.message
        );
        assert!(failure.message.len() < 500);
    }

    #[tokio::test]
    async fn json_answers_pass_and_plain_ones_become_json() {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/plain",
                axum::routing::get(|| async { plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "nope") }),
            )
            .route(
                "/json",
                axum::routing::get(|| async {
                    ApiFailure::bad_request("own_kind", "calseg's own").into_response()
                }),
            )
            .layer(axum::middleware::from_fn(
                |request: Request, next: axum::middleware::Next| async move {
                    let method = request.method().clone();
                    let path = request.uri().path().to_owned();
                    as_api_error(next.run(request).await, &method, &path).await
                },
            ));
        let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
        for (uri, status, kind) in [
            (
                "/plain",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
            ),
            ("/json", StatusCode::BAD_REQUEST, "own_kind"),
            ("/none", StatusCode::NOT_FOUND, "unknown_route"),
        ] {
            let response = app.clone().oneshot(get(uri)).await.unwrap();
            assert_eq!(response.status(), status);
            assert!(is_json(&response), "{uri}");
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            let error: calseg_api::error::ApiError = serde_json::from_slice(&body).unwrap();
            assert_eq!(error.kind, kind, "{uri}");
        }
    }
}
