//! A whole store at once, for `migrate-store`: one read transaction out, one write transaction
//! in (so a failed import writes nothing).

use std::path::Path;

use redb::{ReadTransaction, ReadableTableMetadata, WriteTransaction};

use super::tables::{
    AUDIT, CA_ROTATION, ISSUED, LEASES, NODES, POLICY_REVISIONS, POLICY_TEXTS, ROLLOUT, TOKENS,
};
use super::txn::Tx;
use crate::store::StoreError;
use crate::store::kv::{Key, Space, Stored, Txn};

/// The spaces redb stores (the others are derived from them).
const STORED: [Space; 9] = [
    Space::Tokens,
    Space::Nodes,
    Space::Issued,
    Space::Audit,
    Space::Leases,
    Space::PolicyRevisions,
    Space::PolicyTexts,
    Space::Rollout,
    Space::CaRotation,
];

/// Every record, each with its space.
pub(super) fn dump(tx: &ReadTransaction) -> Result<Vec<(Space, Stored)>, StoreError> {
    let mut tx = Tx::Read(tx);
    let mut out = Vec::new();
    for space in STORED {
        let records = tx.scan(space, None)?;
        out.extend(records.into_iter().map(|r| (space, r)));
    }
    Ok(out)
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
        ("CA rotations", tx.open_table(CA_ROTATION)?.len()?),
    ];
    let held: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} ({n})"))
        .collect();
    Ok(held.join(", "))
}

/// Writes `records` within `tx` if the file holds nothing; `NotEmpty` otherwise.
pub(super) fn load_empty(
    tx: &WriteTransaction,
    path: &Path,
    records: Vec<(Space, Key, Vec<u8>)>,
) -> Result<(), StoreError> {
    let holds = holdings(tx)?;
    if !holds.is_empty() {
        let store = format!("state file {}", path.display());
        return Err(StoreError::NotEmpty { store, holds });
    }
    let mut tx = Tx::Write(tx);
    for (space, key, value) in records {
        tx.put(space, key, value)?;
    }
    Ok(())
}
