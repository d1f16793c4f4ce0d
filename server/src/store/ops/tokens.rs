//! Token operations: creation, the redemption (token and node in one transaction), listing
//! and deletion.

use ring::rand::SystemRandom;
use time::{Duration, OffsetDateTime};

use crate::store::kv::{self, Key, Kv, Space};
use crate::store::tokens::expiry as token_expiry;
use crate::store::tokens::{self as rules, TokenRecord};
use crate::store::{
    NewToken, NodeRecord, StoreError, TokenInfo, TokenScope, TokenUse, transitions,
};

pub(super) fn create(
    store: &impl Kv,
    scope: TokenScope,
    ttl: Duration,
    now: OffsetDateTime,
    created_by: &str,
) -> Result<NewToken, StoreError> {
    let expires_at = token_expiry(&scope, ttl, now)?;
    let rng = SystemRandom::new();
    store.write("creating a token", |tx| {
        // 2^32 ids: a collision is rare, and simply means another draw. On etcd the commit
        // compares the new key as absent, so a concurrent creation of the same id conflicts.
        let (id, token) = loop {
            let (id, token) = rules::generate(&rng)?;
            if tx.get(Space::Tokens, &Key::name(&id))?.is_none() {
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
        kv::put(tx, Space::Tokens, Key::name(&id), &record)?;
        Ok(NewToken {
            id,
            token,
            expires_at,
        })
    })
}

pub(super) fn redeem(
    store: &impl Kv,
    token: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<TokenUse, StoreError> {
    let id = rules::parse_id(token)?;
    store.write("redeeming a token", |tx| {
        let mut record: TokenRecord = kv::get(tx, Space::Tokens, Key::name(id))?
            .ok_or_else(|| StoreError::UnknownToken { id: id.to_owned() })?;
        record.check_redeem(token, node, now)?;
        let existing: Option<NodeRecord> = kv::get(tx, Space::Nodes, Key::name(node))?;
        let (node_record, previous_state) =
            transitions::enroll_by_token(existing, &record.scope, id, node, now)?;
        record.uses.push(node.to_owned());
        kv::put(tx, Space::Tokens, Key::name(id), &record)?;
        kv::put(tx, Space::Nodes, Key::name(node), &node_record)?;
        super::nodes::sync_index(tx, node, previous_state, Some(&node_record))?;
        Ok(TokenUse {
            token_id: id.to_owned(),
            node: node_record,
            previous_state,
        })
    })
}

pub(super) fn list(store: &impl Kv) -> Result<Vec<TokenInfo>, StoreError> {
    let records: Vec<TokenRecord> =
        store.read("listing tokens", |tx| kv::scan(tx, Space::Tokens, None))?;
    Ok(records.iter().map(TokenRecord::info).collect())
}

pub(super) fn delete(store: &impl Kv, id: &str) -> Result<bool, StoreError> {
    store.write("deleting a token", |tx| {
        let key = Key::name(id);
        let found = tx.get(Space::Tokens, &key)?.is_some();
        if found {
            tx.delete(Space::Tokens, key)?;
        }
        Ok(found)
    })
}
