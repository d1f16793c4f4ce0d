//! How failed calls are classified: revoked, transient (unreachable, 429, 5xx), or other.

use super::ClientError;
use std::time::Duration;

fn api(status: u16, kind: &str) -> ClientError {
    ClientError::Api {
        url: "https://a/v1/manifest".into(),
        status,
        kind: kind.into(),
        message: "m".into(),
        retry_after: None,
    }
}

#[test]
fn a_revocation_is_recognised_and_is_neither_transient_nor_unreachable() {
    let revoked = api(403, calseg_api::error::NODE_REVOKED);
    assert!(revoked.is_revoked());
    assert!(!revoked.is_transient());
    assert_eq!(revoked.kind(), "node_revoked");
    assert!(!super::servers::fails_over(&revoked));
}

#[test]
fn other_failures_are_not_a_revocation() {
    let unreachable = ClientError::Unreachable {
        url: "https://a".into(),
        message: "connection refused".into(),
    };
    assert!(unreachable.is_transient() && !unreachable.is_revoked());
    // The kind alone, with another status, is not the server's revocation answer.
    assert!(!api(500, "node_revoked").is_revoked());
    assert!(!api(404, "node_revoked").is_revoked());
    for kind in [
        "node_not_approved",
        "fleet_certificate_superseded",
        "unknown_node",
    ] {
        let e = api(403, kind);
        assert!(!e.is_revoked() && !e.is_transient(), "{kind}");
    }
    let busy = ClientError::Api {
        url: "https://a".into(),
        status: 429,
        kind: "restart_budget_full".into(),
        message: "m".into(),
        retry_after: Some(Duration::from_secs(5)),
    };
    assert!(busy.is_transient() && !busy.is_revoked());
    assert!(!ClientError::Tls("bad key".into()).is_revoked());
}
