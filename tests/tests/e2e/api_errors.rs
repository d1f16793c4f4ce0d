//! Issue 17, finding 9: requests the handlers never see (bad JSON, a body too large, the wrong
//! content type, missing fields, an unknown route) were refused by axum and tower-http in plain
//! text. Against the real server, each now gets calseg's JSON `ApiError` with a kind and a
//! message that says what was wrong, like every other refusal, and enrolls nothing.

use calseg_api::paths;
use calseg_tests::api_client::{Answer, TestNode, https_client};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use reqwest::StatusCode;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
[[hosts]]
match = "auto-*"
components = ["calico-node"]
"#
    )
}

/// Sends `request`, retrying when the server answered and closed before the client finished
/// sending (a reset instead of the answer), and checks the answer is JSON.
async fn json_answer(request: impl Fn() -> reqwest::RequestBuilder) -> (Answer, String) {
    for _ in 0..5 {
        let Ok(response) = request().send().await else {
            continue;
        };
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status}: not JSON ({content_type}): {text:?}"));
        return (
            Answer {
                status,
                body,
                etag: None,
            },
            content_type,
        );
    }
    panic!("no answer in 5 tries");
}

/// What a request tries, how to send it, and the status, kind and words of its answer.
type Case<'a> = (
    &'static str,
    Box<dyn Fn() -> reqwest::RequestBuilder + 'a>,
    StatusCode,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_json_too_large_wrong_type_and_missing_fields_get_calseg_json_errors() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(
        &etcd,
        &policy(&etcd.endpoint(0)),
        "auto_approve = [\"auto-*\"]",
    )
    .await
    .expect("server");
    let mut node = TestNode::new("auto-1", &server.url(), &server.fleet_ca_pem()).expect("node");
    assert_eq!(
        node.enroll(None).await.expect("enroll").status,
        StatusCode::OK
    );
    let anonymous = https_client(&server.fleet_ca_pem(), None).expect("client");
    let enroll = format!("{}{}", server.url(), paths::ENROLL);
    let certificates = format!("{}{}", server.url(), paths::CERTIFICATES);
    let node_client = node.client().expect("client");
    let huge = format!(
        "{{\"node\": \"auto-2\", \"csr_pem\": \"{}\"}}",
        "A".repeat(100_000)
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "bad JSON",
            Box::new(|| {
                anonymous
                    .post(&enroll)
                    .header("content-type", "application/json")
                    .body("{\"node\": \"auto-2\",")
            }),
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "JSON",
        ),
        (
            "a body too large",
            Box::new(|| {
                anonymous
                    .post(&enroll)
                    .header("content-type", "application/json")
                    .body(huge.clone())
            }),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "65536 bytes",
        ),
        (
            "the wrong content type",
            Box::new(|| {
                anonymous
                    .post(&enroll)
                    .header("content-type", "text/plain")
                    .body("{\"node\": \"auto-2\"}")
            }),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            "Content-Type: application/json",
        ),
        (
            "missing fields",
            Box::new(|| {
                anonymous
                    .post(&enroll)
                    .json(&serde_json::json!({"node": "auto-2"}))
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_body",
            "missing field `csr_pem`",
        ),
        (
            "a field of the wrong type, from an enrolled node",
            Box::new(|| {
                node_client
                    .post(&certificates)
                    .json(&serde_json::json!({"component": 7}))
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_body",
            "component",
        ),
        (
            "an unknown route",
            Box::new(|| node_client.get(format!("{}/v1/no-such-route", server.url()))),
            StatusCode::NOT_FOUND,
            "unknown_route",
            "GET /v1/no-such-route",
        ),
    ];
    for (what, request, status, kind, says) in &cases {
        let (answer, content_type) = json_answer(request).await;
        assert_eq!(answer.status, *status, "{what}: {answer:?}");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        assert_eq!(answer.kind(), *kind, "{what}: {answer:?}");
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message}");
    }
    // Nothing of it enrolled anybody.
    let listed = server.cli_ok(&["nodes", "list"]).expect("nodes list");
    assert!(!listed.contains("auto-2"), "{listed}");
}

/// The HTTP/1 read buffer is capped (`MAX_READ_BUFFER`, 8 KiB, so an idle or parked
/// connection holds little): a request head beyond it is refused before any handler runs,
/// while a body far larger than the buffer still streams through to its handler, and the
/// server answers normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_beyond_the_read_buffer_is_refused_and_large_bodies_still_stream() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(
        &etcd,
        &policy(&etcd.endpoint(0)),
        "auto_approve = [\"auto-*\"]",
    )
    .await
    .expect("server");
    let mut node = TestNode::new("auto-1", &server.url(), &server.fleet_ca_pem()).expect("node");
    assert_eq!(
        node.enroll(None).await.expect("enroll").status,
        StatusCode::OK
    );
    let client = node.client().expect("client");
    let manifest = format!("{}{}", server.url(), paths::MANIFEST);

    // A 16 KiB header: refused by the HTTP layer, never served.
    let padded = client
        .get(&manifest)
        .header("x-padding", "A".repeat(16 * 1024))
        .send()
        .await
        .expect("an answer to the oversized head");
    assert_eq!(
        padded.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{padded:?}"
    );

    // A 40 KB body behind a small head reaches the signing handler whole: the handler measures
    // the whole CSR (and refuses it as too large for a CSR); nothing cut it off at the buffer.
    let certificates = format!("{}{}", server.url(), paths::CERTIFICATES);
    let (answer, _) = json_answer(|| {
        client.post(&certificates).json(&serde_json::json!({
            "component": "calico-node",
            "csr_pem": "A".repeat(40_000),
        }))
    })
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    assert_eq!(answer.kind(), "too_large", "{answer:?}");
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("40000 bytes"), "{message}");

    // The server still answers that node as before.
    let fresh = node.client().expect("client");
    let response = fresh.get(&manifest).send().await.expect("manifest");
    assert_eq!(response.status(), StatusCode::OK);
}
