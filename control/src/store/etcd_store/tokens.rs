//! Token operations on etcd: creation, the redemption (token and node in one transaction),
//! listing and deletion.

use time::{Duration, OffsetDateTime};

use super::EtcdStore;
use super::stm::atomically;
use crate::store::tokens::expiry as token_expiry;
use crate::store::tokens::{self as rules, TokenRecord};
use crate::store::{
    NewToken, NodeRecord, StoreError, TokenInfo, TokenScope, TokenUse, transitions,
};

pub(super) fn create(
    store: &EtcdStore,
    scope: TokenScope,
    ttl: Duration,
    now: OffsetDateTime,
    created_by: &str,
) -> Result<NewToken, StoreError> {
    let expires_at = token_expiry(&scope, ttl, now)?;
    atomically(store, "creating a token", |tx| {
        // 2^32 ids: a collision is rare, and simply means another draw. The commit compares the
        // new key as absent, so a concurrent creation of the same id is a conflict.
        let (id, token) = loop {
            let (id, token) = rules::generate(&store.rng)?;
            if tx
                .get::<TokenRecord>("tokens", &store.keys.token(&id))?
                .is_none()
            {
                break (id, token);
            }
        };
        let record = TokenRecord {
            id: id.clone(),
            hash: rules::hash(&token),
            scope: scope.clone(),
            uses: Vec::new(),
            expires_at,
            created_at: now,
            created_by: created_by.to_owned(),
        };
        tx.put("tokens", &store.keys.token(&id), &record)?;
        Ok(NewToken {
            id,
            token,
            expires_at,
        })
    })
}

pub(super) fn redeem(
    store: &EtcdStore,
    token: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<TokenUse, StoreError> {
    let id = rules::parse_id(token)?;
    let (token_key, node_key) = (store.keys.token(id), store.keys.node(node));
    atomically(store, "redeeming a token", |tx| {
        let mut record: TokenRecord = tx
            .get("tokens", &token_key)?
            .ok_or_else(|| StoreError::UnknownToken { id: id.to_owned() })?;
        record.check_redeem(token, node, now)?;
        let existing: Option<NodeRecord> = tx.get("nodes", &node_key)?;
        let (node_record, previous_state) =
            transitions::enroll_by_token(existing, &record.scope, id, node, now)?;
        record.uses.push(node.to_owned());
        tx.put("tokens", &token_key, &record)?;
        tx.put("nodes", &node_key, &node_record)?;
        super::nodes::sync_index(store, tx, node, previous_state, Some(&node_record))?;
        Ok(TokenUse {
            token_id: id.to_owned(),
            node: node_record,
            previous_state,
        })
    })
}

pub(super) fn list(store: &EtcdStore) -> Result<Vec<TokenInfo>, StoreError> {
    let records: Vec<TokenRecord> = store.all("tokens", &store.keys.tokens())?;
    Ok(records.iter().map(TokenRecord::info).collect())
}

pub(super) fn delete(store: &EtcdStore, id: &str) -> Result<bool, StoreError> {
    store.etcd.delete("deleting a token", &store.keys.token(id))
}
