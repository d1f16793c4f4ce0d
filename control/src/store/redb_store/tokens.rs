//! Token operations on redb: creation, the atomic redemption, listing and deletion.

use redb::ReadableTable;
use time::{Duration, OffsetDateTime};

use super::RedbStore;
use super::tables::{self, NODES, TOKENS};
use crate::store::tokens::expiry;
use crate::store::tokens::{self as rules, TokenRecord};
use crate::store::transitions;
use crate::store::{NewToken, StoreError, TokenInfo, TokenScope, TokenUse};

pub(super) fn create(
    store: &RedbStore,
    scope: TokenScope,
    ttl: Duration,
    now: OffsetDateTime,
    created_by: &str,
) -> Result<NewToken, StoreError> {
    let expires_at = expiry(&scope, ttl, now)?;
    store.write(|tx| {
        let mut table = tx.open_table(TOKENS)?;
        // 2^32 ids: a collision is rare, and simply means another draw.
        let (id, token) = loop {
            let (id, token) = rules::generate(&store.rng)?;
            if table.get(id.as_str())?.is_none() {
                break (id, token);
            }
        };
        let record = TokenRecord {
            id: id.clone(),
            hash: rules::hash(&token),
            scope,
            uses: Vec::new(),
            expires_at,
            created_at: now,
            created_by: created_by.to_owned(),
        };
        tables::put(&mut table, "tokens", &id, &record)?;
        Ok(NewToken {
            id,
            token,
            expires_at,
        })
    })
}

pub(super) fn redeem(
    store: &RedbStore,
    token: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<TokenUse, StoreError> {
    let id = rules::parse_id(token)?;
    store.write(|tx| {
        let mut tokens = tx.open_table(TOKENS)?;
        let mut nodes = tx.open_table(NODES)?;
        let mut record: TokenRecord = tables::get(&tokens, "tokens", id)?
            .ok_or_else(|| StoreError::UnknownToken { id: id.to_owned() })?;
        record.check_redeem(token, node, now)?;
        let existing = tables::get(&nodes, "nodes", node)?;
        let (node_record, previous_state) =
            transitions::enroll_by_token(existing, &record.scope, id, node, now)?;
        record.uses.push(node.to_owned());
        tables::put(&mut tokens, "tokens", id, &record)?;
        tables::put(&mut nodes, "nodes", node, &node_record)?;
        Ok(TokenUse {
            token_id: id.to_owned(),
            node: node_record,
            previous_state,
        })
    })
}

pub(super) fn list(store: &RedbStore) -> Result<Vec<TokenInfo>, StoreError> {
    store.read(|tx| {
        let records: Vec<TokenRecord> = tables::all(&tx.open_table(TOKENS)?, "tokens")?;
        Ok(records.iter().map(TokenRecord::info).collect())
    })
}

pub(super) fn delete(store: &RedbStore, id: &str) -> Result<bool, StoreError> {
    store.write(|tx| Ok(tx.open_table(TOKENS)?.remove(id)?.is_some()))
}
