//! Tokens in the redb file: the hash is what is stored, never the secret.

use super::node_token;
use crate::store::Store;

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
