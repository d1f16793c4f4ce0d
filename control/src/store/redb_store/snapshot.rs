//! Export and import of a whole [`StoreSnapshot`] on redb: one read transaction out, one write
//! transaction in (so a failed import writes nothing).

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::RedbStore;
use super::tables::{
    self, AUDIT, ISSUED, ISSUED_BY_NODE, LEASES, NODES, POLICY_REVISIONS, POLICY_TEXTS, ROLLOUT,
    TOKENS,
};
use crate::store::codec::{decode, encode};
use crate::store::snapshot::{PolicyText, SNAPSHOT_FORMAT, SnapshotToken, StoreSnapshot};
use crate::store::tokens::TokenRecord;
use crate::store::{AuditEntry, PolicyRevision, StoreError};

pub(super) fn export(store: &RedbStore) -> Result<StoreSnapshot, StoreError> {
    store.read(|tx| {
        let tokens: Vec<TokenRecord> = tables::all(&tx.open_table(TOKENS)?, "tokens")?;
        let mut audit: Vec<AuditEntry> = Vec::new();
        for row in tx.open_table(AUDIT)?.iter()? {
            let (k, v) = row?;
            audit.push(decode("audit", &k.value().to_string(), v.value())?);
        }
        let mut policy_revisions: Vec<PolicyRevision> = Vec::new();
        for row in tx.open_table(POLICY_REVISIONS)?.iter()? {
            let (k, v) = row?;
            policy_revisions.push(decode(
                "policy_revisions",
                &k.value().to_string(),
                v.value(),
            )?);
        }
        let mut policy_texts = Vec::new();
        for row in tx.open_table(POLICY_TEXTS)?.iter()? {
            let (k, v) = row?;
            policy_texts.push(PolicyText {
                revision: k.value(),
                text: v.value().to_owned(),
            });
        }
        let mut snapshot = StoreSnapshot {
            format: SNAPSHOT_FORMAT,
            tokens: tokens.into_iter().map(SnapshotToken::from).collect(),
            nodes: tables::all(&tx.open_table(NODES)?, "nodes")?,
            issued: tables::all(&tx.open_table(ISSUED)?, "issued")?,
            audit,
            leases: tables::all(&tx.open_table(LEASES)?, "leases")?,
            policy_revisions,
            policy_texts,
            rollout: tables::get(&tx.open_table(ROLLOUT)?, "rollout", "current")?,
        };
        snapshot.sort();
        Ok(snapshot)
    })
}

/// What the store holds, e.g. `nodes (3), audit (12)`; empty when it holds nothing.
fn holdings(tx: &WriteTransaction) -> Result<String, StoreError> {
    let counts = [
        ("tokens", tx.open_table(TOKENS)?.len()?),
        ("nodes", tx.open_table(NODES)?.len()?),
        ("issued certificates", tx.open_table(ISSUED)?.len()?),
        ("audit entries", tx.open_table(AUDIT)?.len()?),
        ("leases", tx.open_table(LEASES)?.len()?),
        ("policy revisions", tx.open_table(POLICY_REVISIONS)?.len()?),
        ("policy texts", tx.open_table(POLICY_TEXTS)?.len()?),
        ("rollouts", tx.open_table(ROLLOUT)?.len()?),
    ];
    let held: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} ({n})"))
        .collect();
    Ok(held.join(", "))
}

pub(super) fn import(store: &RedbStore, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
    snapshot.check()?;
    store.write(|tx| {
        let holds = holdings(tx)?;
        if !holds.is_empty() {
            let store = format!("state file {}", store.path.display());
            return Err(StoreError::NotEmpty { store, holds });
        }
        let mut table = tx.open_table(TOKENS)?;
        for t in &snapshot.tokens {
            tables::put(&mut table, "tokens", &t.id, &TokenRecord::from(t))?;
        }
        let mut table = tx.open_table(NODES)?;
        for n in &snapshot.nodes {
            tables::put(&mut table, "nodes", &n.name, n)?;
        }
        let mut table = tx.open_table(ISSUED)?;
        let mut index = tx.open_multimap_table(ISSUED_BY_NODE)?;
        for c in &snapshot.issued {
            tables::put(&mut table, "issued", &c.serial, c)?;
            index.insert(c.node.as_str(), c.serial.as_str())?;
        }
        let mut table = tx.open_table(LEASES)?;
        for l in &snapshot.leases {
            tables::put(&mut table, "leases", &l.id, l)?;
        }
        let mut table = tx.open_table(AUDIT)?;
        for e in &snapshot.audit {
            table.insert(e.seq, encode("audit", &e.seq.to_string(), e)?.as_slice())?;
        }
        let mut table = tx.open_table(POLICY_REVISIONS)?;
        for r in &snapshot.policy_revisions {
            let key = r.revision.to_string();
            table.insert(r.revision, encode("policy_revisions", &key, r)?.as_slice())?;
        }
        let mut table = tx.open_table(POLICY_TEXTS)?;
        for t in &snapshot.policy_texts {
            table.insert(t.revision, t.text.as_str())?;
        }
        if let Some(rollout) = &snapshot.rollout {
            tables::put(&mut tx.open_table(ROLLOUT)?, "rollout", "current", rollout)?;
        }
        Ok(())
    })
}
