//! The shared conformance checks, on a new redb file each, and the export/import round trip.

use super::fresh;
use calseg_server::store::{Store, StoreSnapshot};
use calseg_testkit::store_conformance::{self as conformance, CHECKS, RACES};

#[test]
fn every_conformance_check_passes_on_redb() {
    conformance::run(CHECKS, |check| check(&fresh().1));
}

#[test]
fn every_race_passes_on_redb() {
    conformance::run(RACES, |race| race(&[&fresh().1]));
}

#[test]
fn export_then_import_gives_an_equal_store() {
    let ((_a, source), (_b, target)) = (fresh(), fresh());
    conformance::export_then_import_gives_an_equal_store(&source, &target);
}

#[test]
fn a_snapshot_survives_json_and_a_second_copy() {
    let ((_a, first), (_b, second), (_c, third)) = (fresh(), fresh(), fresh());
    conformance::populate(&first);
    let snapshot = conformance::copy(&first, &second);
    let json = serde_json::to_string(&snapshot).unwrap();
    let parsed: StoreSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, snapshot);
    third.import_snapshot(&parsed).unwrap();
    assert_eq!(
        third.export_snapshot().unwrap(),
        first.export_snapshot().unwrap()
    );
}
