//! Enrollment tokens: single use, match scopes, expiry, secrets and listings.

use time::Duration;

use super::{match_token, node_token, t0};
use calseg_server::store::{NodeState, Store, StoreError, TokenScope};

pub fn node_token_is_single_use_even_for_the_same_node(store: &dyn Store) {
    let tok = node_token(store, "worker-1");
    let used = store.redeem_token(&tok.token, "worker-1", t0()).unwrap();
    assert_eq!(used.node.state, NodeState::Approved);
    assert_eq!(
        used.node.approved_by.as_deref(),
        Some(format!("token:{}", tok.id).as_str())
    );
    assert_eq!(used.previous_state, None);
    let again = store
        .redeem_token(&tok.token, "worker-1", t0())
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::Exhausted {
                uses: 1,
                uses_max: 1,
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(again.kind(), "token_exhausted");
}

pub fn node_token_refuses_another_node_and_changes_nothing(store: &dyn Store) {
    let tok = node_token(store, "worker-1");
    let err = store
        .redeem_token(&tok.token, "worker-2", t0())
        .unwrap_err();
    assert!(matches!(err, StoreError::NodeNotAllowed { ref node, .. } if node == "worker-2"));
    assert!(
        err.to_string().contains("token create --node worker-2"),
        "{err}"
    );
    assert!(store.node("worker-2").unwrap().is_none());
    assert!(store.list_tokens().unwrap()[0].uses.is_empty());
    store.redeem_token(&tok.token, "worker-1", t0()).unwrap();
}

pub fn match_token_serves_distinct_matching_nodes_once_each(store: &dyn Store) {
    let tok = match_token(store, "worker-*", 2);
    store.redeem_token(&tok.token, "worker-1", t0()).unwrap();
    let err = store
        .redeem_token(&tok.token, "worker-1", t0())
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyUsedByNode { .. }), "{err}");
    let err = store.redeem_token(&tok.token, "db-1", t0()).unwrap_err();
    assert!(matches!(err, StoreError::NodeNotAllowed { .. }), "{err}");
    store.redeem_token(&tok.token, "worker-2", t0()).unwrap();
    let err = store
        .redeem_token(&tok.token, "worker-3", t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Exhausted {
                uses: 2,
                uses_max: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.list_tokens().unwrap()[0].uses,
        ["worker-1", "worker-2"]
    );
}

pub fn match_token_cannot_take_over_a_known_node(store: &dyn Store) {
    store
        .redeem_token(&node_token(store, "worker-1").token, "worker-1", t0())
        .unwrap();
    let tok = match_token(store, "worker-*", 5);
    let err = store
        .redeem_token(&tok.token, "worker-1", t0())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NodeKnown {
                state: NodeState::Approved,
                ..
            }
        ),
        "{err}"
    );
    // A pending node is not yet anyone's: the match token may approve it.
    store
        .upsert_pending_node(
            "worker-2",
            &crate::store_conformance::ask("CSR", "sha256:worker-2"),
            t0(),
        )
        .unwrap();
    let used = store.redeem_token(&tok.token, "worker-2", t0()).unwrap();
    assert_eq!(used.previous_state, Some(NodeState::Pending));
    assert_eq!(used.node.pending_csr, None);
}

pub fn expired_token_is_refused_with_when_and_what_to_do(store: &dyn Store) {
    let tok = node_token(store, "worker-1");
    assert_eq!(tok.expires_at, t0() + Duration::hours(1));
    let err = store
        .redeem_token(&tok.token, "worker-1", tok.expires_at)
        .unwrap_err();
    assert!(matches!(err, StoreError::Expired { expired_at, .. } if expired_at == tok.expires_at));
    assert!(
        err.to_string().contains("calseg-server token create"),
        "{err}"
    );
    store
        .redeem_token(
            &tok.token,
            "worker-1",
            tok.expires_at - Duration::seconds(1),
        )
        .unwrap();
}

pub fn wrong_secret_unknown_and_malformed_tokens_are_refused(store: &dyn Store) {
    let tok = node_token(store, "worker-1");
    let secret = tok.token.split_once('.').unwrap().1;
    let wrong = format!("{}.{}", tok.id, "0".repeat(64));
    let err = store.redeem_token(&wrong, "worker-1", t0()).unwrap_err();
    assert!(matches!(err, StoreError::BadSecret { .. }), "{err}");
    let unknown = format!(
        "{}.{secret}",
        if tok.id == "00000000" {
            "11111111"
        } else {
            "00000000"
        }
    );
    let err = store.redeem_token(&unknown, "worker-1", t0()).unwrap_err();
    assert!(matches!(err, StoreError::UnknownToken { .. }), "{err}");
    for bad in [
        "",
        ".",
        "abc",
        &tok.id,
        &format!("{}.{}", tok.id, &secret[1..]),
        "x\0.y",
    ] {
        let err = store.redeem_token(bad, "worker-1", t0()).unwrap_err();
        assert!(matches!(err, StoreError::MalformedToken), "{bad:?}: {err}");
    }
    assert!(
        !format!("{tok:?}").contains(secret),
        "Debug must redact the secret"
    );
    store.redeem_token(&tok.token, "worker-1", t0()).unwrap();
}

pub fn invalid_scopes_and_lifetimes_are_refused(store: &dyn Store) {
    let bad = [
        TokenScope::Node(String::new()),
        TokenScope::Match {
            glob: "worker-*".into(),
            uses_max: 0,
        },
        TokenScope::Match {
            glob: "worker-[".into(),
            uses_max: 1,
        },
    ];
    for scope in bad {
        let err = store
            .create_token(scope, Duration::hours(1), t0(), "admin")
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_scope", "{err}");
    }
    let scope = TokenScope::Node("n".into());
    let err = store
        .create_token(scope, Duration::ZERO, t0(), "admin")
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_ttl");
}

pub fn delete_token_makes_it_unknown(store: &dyn Store) {
    let tok = node_token(store, "worker-1");
    assert!(store.delete_token(&tok.id).unwrap());
    assert!(!store.delete_token(&tok.id).unwrap());
    let err = store
        .redeem_token(&tok.token, "worker-1", t0())
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownToken { .. }), "{err}");
}
