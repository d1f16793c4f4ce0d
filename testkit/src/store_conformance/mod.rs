//! The behaviour every [`Store`] backend must show, as checks over `&dyn Store` that panic on
//! failure. The unit tests run them on [`RedbStore`](calseg_server::store::RedbStore); the end-to-end
//! tests run the very same checks on [`EtcdStore`](calseg_server::store::EtcdStore) against a real
//! etcd. Test support, compiled into the library only so that both can reach it: not an API.
//!
//! Each check wants a new, empty store. [`CHECKS`] take one store, [`RACES`] take one or more
//! instances sharing one backend (server replicas), and the snapshot checks take a source and
//! an empty target.
//!
//! # Layout
//! - `tokens`, `nodes`, `leases`, `records`: the operations, one concern each.
//! - `races`: the invariants under concurrent callers.
//! - `snapshot`: export and import.

mod leases;
mod nodes;
mod races;
mod records;
mod snapshot;
mod tokens;

pub use records::{ca_rotation_record, entry, rollout_record};
pub use snapshot::{copy, export_then_import_gives_an_equal_store, populate};

use time::{Duration, OffsetDateTime};

use calseg_server::store::{NewToken, PendingAsk, PendingKey, Store, TokenScope};

/// A request to enroll without a token, with `csr` standing for the CSR and `fp` for its key's
/// fingerprint, from 192.0.2.1, with a cap of 100 pending nodes.
pub fn ask(csr: &str, fp: &str) -> PendingAsk {
    PendingAsk {
        csr_pem: csr.to_owned(),
        key: PendingKey {
            fingerprint: fp.to_owned(),
            source: "192.0.2.1".to_owned(),
        },
        max_pending: 100,
    }
}

/// A check on one new, empty store.
pub type Check = fn(&dyn Store);
/// A check on several instances of one new, empty store.
pub type Race = fn(&[&dyn Store]);

/// `[module::check, ...]` as `&[("check", module::check), ...]`.
macro_rules! named {
    ($($module:ident :: $check:ident),* $(,)?) => {
        &[$((stringify!($check), $module::$check)),*]
    };
}

/// Every single-store check, by name.
pub const CHECKS: &[(&str, Check)] = named![
    tokens::node_token_is_single_use_even_for_the_same_node,
    tokens::node_token_refuses_another_node_and_changes_nothing,
    tokens::match_token_serves_distinct_matching_nodes_once_each,
    tokens::match_token_cannot_take_over_a_known_node,
    tokens::expired_token_is_refused_with_when_and_what_to_do,
    tokens::wrong_secret_unknown_and_malformed_tokens_are_refused,
    tokens::invalid_scopes_and_lifetimes_are_refused,
    tokens::delete_token_makes_it_unknown,
    nodes::approval_flow_pending_approve_fleet_cert,
    nodes::checked_transitions,
    nodes::a_revocation_starts_a_new_enrollment_generation,
    nodes::reports_and_last_seen,
    nodes::serials_are_unique_and_indexed_by_node,
    nodes::a_certificate_and_its_audit_entry_are_recorded_together_or_not_at_all,
    nodes::a_batch_of_certificates_is_recorded_in_one_commit_each_refused_alone,
    nodes::the_standing_of_a_node_is_its_records,
    nodes::a_pending_request_binds_one_key_and_another_key_is_refused,
    nodes::approval_names_the_key_by_its_fingerprint,
    nodes::pending_nodes_are_capped_deleted_and_expire,
    leases::the_budget_refuses_one_more_and_a_retry_gets_the_same_lease,
    leases::an_expired_lease_does_not_count_and_cannot_be_renewed,
    leases::only_the_holder_may_release_or_renew,
    leases::a_host_group_has_its_own_limit_inside_the_fleet_budget,
    leases::a_lease_is_never_renewed_past_its_longest_life,
    records::audit_is_append_only_ordered_and_paged,
    records::the_same_hash_keeps_its_number_and_a_new_one_gets_the_next,
    records::policy_texts_and_the_rollout_are_kept_and_replaced,
    records::the_ca_rotation_is_kept_and_replaced,
    snapshot::an_empty_store_exports_an_empty_snapshot,
    snapshot::import_refuses_a_store_that_is_not_empty,
    snapshot::import_refuses_an_inconsistent_snapshot,
];

/// Every concurrency check, by name.
pub const RACES: &[(&str, Race)] = named![
    races::concurrent_redeems_of_a_three_use_token_succeed_exactly_three_times,
    races::concurrent_recordings_store_each_serial_once,
    races::concurrent_audit_appends_get_dense_unique_numbers,
    races::a_burst_of_acquisitions_grants_exactly_the_budget,
    races::concurrent_acquisitions_never_exceed_the_budget,
    races::concurrent_new_pending_requests_never_exceed_the_cap,
];

/// Runs `each` for every check and fails at the end, naming every check that failed (their
/// panic messages are printed as they happen).
pub fn run<T>(checks: &[(&str, T)], mut each: impl FnMut(&T)) {
    let mut failed = Vec::new();
    for (name, check) in checks {
        eprintln!("conformance check {name}");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| each(check)));
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed conformance checks: {failed:?}");
}

/// A fixed, whole-second "now".
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
}

/// A token for exactly `node`, valid an hour from [`t0`].
pub fn node_token(store: &dyn Store, node: &str) -> NewToken {
    let scope = TokenScope::Node(node.to_owned());
    store
        .create_token(scope, Duration::hours(1), t0(), "admin:test")
        .unwrap()
}

/// A token for up to `uses_max` nodes matching `glob`, valid an hour from [`t0`].
pub fn match_token(store: &dyn Store, glob: &str, uses_max: u32) -> NewToken {
    let scope = TokenScope::Match {
        glob: glob.to_owned(),
        uses_max,
    };
    store
        .create_token(scope, Duration::hours(1), t0(), "admin:test")
        .unwrap()
}
