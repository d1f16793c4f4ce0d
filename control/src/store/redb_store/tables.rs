//! The redb tables, and their creation on open.
//!
//! | table            | key          | value                       |
//! |------------------|--------------|-----------------------------|
//! | `meta`           | name         | u64 (`schema_version`)      |
//! | `nodes`          | node name    | JSON [`NodeRecord`](crate::store::NodeRecord) |
//! | `tokens`         | token id     | JSON token record (with the hash) |
//! | `issued`         | serial (hex) | JSON [`IssuedRecord`](crate::store::IssuedRecord) |
//! | `issued_by_node` | node name    | multimap of serials         |
//! | `audit`          | seq          | JSON [`AuditEntry`](crate::store::AuditEntry) |
//! | `leases`         | lease id     | JSON [`LeaseRecord`](crate::store::LeaseRecord) |
//! | `policy_revisions` | revision   | JSON [`PolicyRevision`](crate::store::PolicyRevision) |
//! | `policy_texts`   | revision     | the policy file's text      |
//! | `rollout`        | `current`    | JSON [`RolloutRecord`](crate::store::RolloutRecord) |
//! | `ca_rotation`    | `current`    | JSON [`CaRotationRecord`](crate::store::CaRotationRecord) |
//!
//! Keys are whole strings, never concatenations, so no node name can alias another key.

use redb::{MultimapTableDefinition, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::StoreError;

/// The schema this code writes. Bump it (and migrate in [`init`]) on incompatible changes only;
/// additive changes go through serde defaults.
pub const SCHEMA_VERSION: u64 = 1;

/// JSON values by name.
pub type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;
/// JSON values by number.
pub type NumTable = TableDefinition<'static, u64, &'static [u8]>;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const NODES: JsonTable = TableDefinition::new("nodes");
pub const TOKENS: JsonTable = TableDefinition::new("tokens");
pub const ISSUED: JsonTable = TableDefinition::new("issued");
pub const ISSUED_BY_NODE: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("issued_by_node");
pub const AUDIT: NumTable = TableDefinition::new("audit");
/// Added after schema 1 shipped; created on open, so older files gain it without a migration.
pub const LEASES: JsonTable = TableDefinition::new("leases");
/// Added after schema 1 shipped, like `leases`.
pub const POLICY_REVISIONS: NumTable = TableDefinition::new("policy_revisions");
/// Added after schema 1 shipped, like `leases`.
pub const POLICY_TEXTS: TableDefinition<u64, &str> = TableDefinition::new("policy_texts");
/// Added after schema 1 shipped, like `leases`.
pub const ROLLOUT: JsonTable = TableDefinition::new("rollout");
/// Added after schema 1 shipped, like `leases`.
pub const CA_ROTATION: JsonTable = TableDefinition::new("ca_rotation");

/// Creates every table and checks (or writes) the schema version.
pub fn init(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META)?;
    let found = meta.get("schema_version")?.map(|v| v.value());
    match found {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {}
        None => {
            meta.insert("schema_version", SCHEMA_VERSION)?;
        }
    }
    for def in [NODES, TOKENS, ISSUED, LEASES, ROLLOUT, CA_ROTATION] {
        tx.open_table(def)?;
    }
    tx.open_multimap_table(ISSUED_BY_NODE)?;
    tx.open_table(AUDIT)?;
    tx.open_table(POLICY_REVISIONS)?;
    tx.open_table(POLICY_TEXTS)?;
    Ok(())
}
