//! Enrollment tokens: single use, match scopes, expiry, secrets and listings.

use std::sync::Arc;

use time::Duration;

use super::{fresh, match_token, node_token, t0};
use crate::store::{NodeState, Store, StoreError, TokenScope};

#[test]
fn node_token_is_single_use_even_for_the_same_node() {
    let (_dir, store) = fresh();
    let tok = node_token(&store, "worker-1");
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

#[test]
fn node_token_refuses_another_node_and_changes_nothing() {
    let (_dir, store) = fresh();
    let tok = node_token(&store, "worker-1");
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

#[test]
fn match_token_serves_distinct_matching_nodes_once_each() {
    let (_dir, store) = fresh();
    let tok = match_token(&store, "worker-*", 2);
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

#[test]
fn match_token_cannot_take_over_a_known_node() {
    let (_dir, store) = fresh();
    store
        .redeem_token(&node_token(&store, "worker-1").token, "worker-1", t0())
        .unwrap();
    let tok = match_token(&store, "worker-*", 5);
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
    store.upsert_pending_node("worker-2", "CSR", t0()).unwrap();
    let used = store.redeem_token(&tok.token, "worker-2", t0()).unwrap();
    assert_eq!(used.previous_state, Some(NodeState::Pending));
    assert_eq!(used.node.pending_csr, None);
}

#[test]
fn expired_token_is_refused_with_when_and_what_to_do() {
    let (_dir, store) = fresh();
    let tok = node_token(&store, "worker-1");
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

#[test]
fn wrong_secret_unknown_and_malformed_tokens_are_refused() {
    let (_dir, store) = fresh();
    let tok = node_token(&store, "worker-1");
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

#[test]
fn the_store_keeps_neither_secret_nor_exposes_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = crate::store::RedbStore::open(&path).unwrap();
    let tok = node_token(&store, "worker-1");
    let secret = tok.token.split_once('.').unwrap().1;
    let hash = crate::store::tokens::hash(&tok.token);
    assert!(!hash.contains(secret) && hash != tok.token);
    let listed = format!("{:?}", store.list_tokens().unwrap());
    assert!(
        !listed.contains(secret) && !listed.contains(&hash),
        "{listed}"
    );
    drop(store);
    let file = std::fs::read(&path).unwrap();
    let has = |needle: &str| file.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has(&hash), "the hash is what is stored");
    assert!(!has(secret), "the secret must never reach the file");
}

#[test]
fn invalid_scopes_and_lifetimes_are_refused() {
    let (_dir, store) = fresh();
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

#[test]
fn delete_token_makes_it_unknown() {
    let (_dir, store) = fresh();
    let tok = node_token(&store, "worker-1");
    assert!(store.delete_token(&tok.id).unwrap());
    assert!(!store.delete_token(&tok.id).unwrap());
    let err = store
        .redeem_token(&tok.token, "worker-1", t0())
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownToken { .. }), "{err}");
}

#[test]
fn concurrent_redeems_of_a_three_use_token_succeed_exactly_three_times() {
    let (_dir, store) = fresh();
    let store: Arc<dyn Store> = Arc::new(store);
    let tok = match_token(store.as_ref(), "worker-*", 3);
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let (store, token) = (Arc::clone(&store), tok.token.clone());
            std::thread::spawn(move || store.redeem_token(&token, &format!("worker-{i}"), t0()))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.kind() == "token_exhausted")
    );
    assert_eq!(store.list_tokens().unwrap()[0].uses.len(), 3);
    assert_eq!(store.nodes().unwrap().len(), 3);
}
