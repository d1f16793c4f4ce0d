//! The bytes on disk are those earlier versions wrote and read: the tables, their key and value
//! types, and the form of each value, read with table definitions of their own (not the
//! store's), so a change of layout fails here rather than on an operator's old file.

use redb::{
    Database, MultimapTableDefinition, MultimapTableHandle, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableHandle,
};

use calseg_server::store::{AuditEntry, NodeRecord, NodeState, PolicyRevision, RedbStore};
use calseg_testkit::store_conformance::populate;

#[test]
fn the_file_keeps_the_tables_and_value_forms_of_earlier_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    populate(&RedbStore::open(&path).unwrap());
    let db = Database::open(&path).unwrap();
    let tx = db.begin_read().unwrap();
    let mut tables: Vec<String> = tx
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    tables.extend(
        tx.list_multimap_tables()
            .unwrap()
            .map(|t| t.name().to_owned()),
    );
    tables.sort();
    // `ca_rotation` was added (created on open, like `leases`): older files gain it, and an
    // older calseg never opens it.
    let expected = [
        "audit",
        "ca_rotation",
        "issued",
        "issued_by_node",
        "leases",
        "meta",
        "nodes",
        "policy_revisions",
        "policy_texts",
        "rollout",
        "tokens",
    ];
    assert_eq!(tables, expected, "no table added or renamed");

    let meta = tx
        .open_table(TableDefinition::<&str, u64>::new("meta"))
        .unwrap();
    assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 1);

    let json = |name| TableDefinition::<&str, &[u8]>::new(name);
    let nodes = tx.open_table(json("nodes")).unwrap();
    let p1: NodeRecord =
        serde_json::from_slice(nodes.get("p-1").unwrap().unwrap().value()).unwrap();
    assert_eq!(p1.state, NodeState::Pending);
    let tokens = tx.open_table(json("tokens")).unwrap();
    assert_eq!(tokens.len().unwrap(), 2);
    let rollout = tx.open_table(json("rollout")).unwrap();
    assert!(rollout.get("current").unwrap().is_some());
    assert_eq!(rollout.len().unwrap(), 1);

    let audit = tx
        .open_table(TableDefinition::<u64, &[u8]>::new("audit"))
        .unwrap();
    let seqs: Vec<u64> = audit
        .iter()
        .unwrap()
        .map(|r| r.unwrap().0.value())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let third: AuditEntry = serde_json::from_slice(audit.get(3).unwrap().unwrap().value()).unwrap();
    assert_eq!(third.seq, 3);

    let revisions = tx
        .open_table(TableDefinition::<u64, &[u8]>::new("policy_revisions"))
        .unwrap();
    let second: PolicyRevision =
        serde_json::from_slice(revisions.get(2).unwrap().unwrap().value()).unwrap();
    assert_eq!((second.revision, second.hash.as_str()), (2, "bb"));

    let texts = tx
        .open_table(TableDefinition::<u64, &str>::new("policy_texts"))
        .unwrap();
    assert_eq!(
        texts.get(2).unwrap().unwrap().value(),
        "two",
        "plain text, not JSON"
    );

    let by_node = tx
        .open_multimap_table(MultimapTableDefinition::<&str, &str>::new("issued_by_node"))
        .unwrap();
    let serials: Vec<String> = by_node
        .get("w-1")
        .unwrap()
        .map(|s| s.unwrap().value().to_owned())
        .collect();
    assert_eq!(serials, ["0a", "0b"], "serials only");
}
