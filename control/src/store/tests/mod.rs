//! Tokens in the redb file: the hash is what is stored, never the secret. (The contract both
//! backends share is checked by `calseg-testkit`'s store conformance suite.)
#![allow(clippy::unwrap_used)]

mod stored_report;

use super::{RedbStore, Store, TokenScope};
use time::{Duration, OffsetDateTime};

#[test]
fn the_store_keeps_neither_secret_nor_exposes_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = RedbStore::open(&path).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
    let scope = TokenScope::Node("worker-1".to_owned());
    let tok = store
        .create_token(scope, Duration::hours(1), now, "admin:test")
        .unwrap();
    let secret = tok.token.split_once('.').unwrap().1;
    let hash = super::tokens::hash(&tok.token);
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
