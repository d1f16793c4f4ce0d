//! The node inventory: what an operator (and the metrics) needs to know about each node, read
//! from its record and its agent's last report, and the filters of `nodes list`. Pure functions
//! of the records and the clock, so they are tested without a server.

use crate::store::NodeRecord;
use calseg_api::report::{LastReport, Report};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One installed certificate of the inventory.
pub use calseg_api::admin::InstalledCertificate as Installed;
/// The inventory of one node ([`calseg_api::admin::NodeInventory`], the type the CLI reads).
pub use calseg_api::admin::NodeInventory as Summary;

/// Where one approved node stands with the current policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convergence {
    /// Its last report names the current manifest revision and has no errors.
    Converged,
    /// No report yet, or one for an older revision.
    Pending,
    /// Its last report has errors.
    Failed,
    /// The policy gives it no component.
    Unassigned,
}

/// The inventory of `record`, read from its last report.
pub fn summary_of(record: &NodeRecord) -> Summary {
    let mut summary = Summary::default();
    match &record.last_report {
        None => return summary,
        Some(LastReport::Read(report)) => read(&mut summary, report.clone()),
        Some(LastReport::Unreadable { error, .. }) => summary
            .errors
            .push(format!("the last report could not be read: {error}")),
    }
    summary.failed = !summary.errors.is_empty() || !summary.failed_units.is_empty();
    summary.drift = !summary.errors.is_empty() || !summary.unconverged.is_empty();
    summary
}

fn read(summary: &mut Summary, report: Report) {
    summary.revision = Some(report.revision);
    for identity in report.identities {
        if !identity.status.is_converged() {
            summary
                .unconverged
                .push(format!("{}: {}", identity.component, identity.status));
        }
        match identity
            .not_after
            .map(|t| OffsetDateTime::parse(&t, &Rfc3339))
        {
            Some(Ok(at)) => summary.certificates.push(Installed {
                component: identity.component,
                not_after: at.unix_timestamp(),
            }),
            Some(Err(_)) => summary
                .unconverged
                .push(format!("{}: unreadable not_after", identity.component)),
            None => {}
        }
    }
    summary
        .certificates
        .sort_by(|a, b| (a.not_after, &a.component).cmp(&(b.not_after, &b.component)));
    summary.units_reported = report.units.len();
    summary.failed_units = report
        .units
        .into_iter()
        .filter(|u| u.active_state != "active")
        .map(|u| format!("{} ({})", u.unit, u.active_state))
        .collect();
    summary.errors = report.errors;
}

/// The filters of `GET /v1/admin/nodes` (the query the CLI sends).
pub use calseg_api::admin::NodeFilter;

/// A node as the inventory lists it: the stored record and its summary.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryRow {
    #[serde(flatten)]
    pub record: NodeRecord,
    pub inventory: Summary,
    /// The manifest revision the current policy gives the node (compare with
    /// `inventory.revision`, the one it last reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Where an approved node stands with the current policy (see `rollout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergence: Option<Convergence>,
}

/// The nodes of `records` that pass `filter` at `now`, with their summaries, in store order.
pub fn select(
    records: Vec<NodeRecord>,
    filter: &NodeFilter,
    now: OffsetDateTime,
) -> Vec<InventoryRow> {
    records
        .into_iter()
        .map(|record| InventoryRow {
            inventory: summary_of(&record),
            record,
            current_revision: None,
            convergence: None,
        })
        .filter(|row| passes(row, filter, now))
        .collect()
}

fn passes(row: &InventoryRow, filter: &NodeFilter, now: OffsetDateTime) -> bool {
    if let Some(within) = filter.expiring_within_secs
        && row.inventory.expiring_within(within, now) == 0
    {
        return false;
    }
    if filter.failed && !row.inventory.failed {
        return false;
    }
    if let Some(since) = filter.not_seen_since_secs {
        let limit = time::Duration::seconds(i64::try_from(since).unwrap_or(i64::MAX));
        if row.record.last_seen.is_some_and(|seen| now - seen <= limit) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeState;
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;
    const DAY: i64 = 86_400;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn rfc(unix: i64) -> String {
        at(unix).format(&Rfc3339).unwrap()
    }

    fn node(name: &str, last_seen: Option<i64>, report: Option<serde_json::Value>) -> NodeRecord {
        NodeRecord {
            last_seen: last_seen.map(at),
            // Read back as a stored record is.
            last_report: report.map(|json| serde_json::from_value(json).unwrap()),
            ..NodeRecord::new(name, NodeState::Approved, at(0))
        }
    }

    /// A report with calico-node expiring at `expires`, one unit in `unit_state`, `errors`.
    fn report(expires: i64, unit_state: &str, errors: &[&str]) -> serde_json::Value {
        json!({
            "revision": "rev-1",
            "identities": [
                {"component": "cni-plugin", "serial": "01", "not_after": rfc(NOW + 60 * DAY), "status": "unchanged"},
                {"component": "calico-node", "serial": "02", "not_after": rfc(expires), "status": "installed"},
            ],
            "units": [{"unit": "calico-node.service", "active_state": unit_state, "n_restarts": 1, "restarted": true}],
            "errors": errors,
        })
    }

    fn names(records: Vec<NodeRecord>, filter: &NodeFilter) -> Vec<String> {
        select(records, filter, at(NOW))
            .into_iter()
            .map(|row| row.record.name)
            .collect()
    }

    fn fleet() -> Vec<NodeRecord> {
        vec![
            node(
                "healthy",
                Some(NOW - 60),
                Some(report(NOW + 30 * DAY, "active", &[])),
            ),
            node(
                "expiring",
                Some(NOW - 60),
                Some(report(NOW + 2 * DAY, "active", &[])),
            ),
            node(
                "expired",
                Some(NOW - 60),
                Some(report(NOW - DAY, "active", &[])),
            ),
            node(
                "unit-failed",
                Some(NOW - 60),
                Some(report(NOW + 30 * DAY, "failed", &[])),
            ),
            node(
                "errors",
                Some(NOW - 60),
                Some(report(NOW + 30 * DAY, "active", &["boom"])),
            ),
            node("stale", Some(NOW - 2 * 3600), None),
            node("never", None, None),
        ]
    }

    #[test]
    fn no_filter_lists_every_node() {
        assert_eq!(names(fleet(), &NodeFilter::default()).len(), 7);
    }

    #[test]
    fn expiring_within_selects_installed_certificates_expiring_or_expired() {
        let filter = NodeFilter {
            expiring_within_secs: Some(7 * 86_400),
            ..NodeFilter::default()
        };
        assert_eq!(names(fleet(), &filter), ["expiring", "expired"]);
        let filter = NodeFilter {
            expiring_within_secs: Some(90 * 86_400),
            ..NodeFilter::default()
        };
        // Nodes without a report have no installed certificate to expire.
        assert_eq!(names(fleet(), &filter).len(), 5);
    }

    #[test]
    fn failed_selects_errors_and_units_not_active() {
        let filter = NodeFilter {
            failed: true,
            ..NodeFilter::default()
        };
        assert_eq!(names(fleet(), &filter), ["unit-failed", "errors"]);
    }

    #[test]
    fn not_seen_since_selects_older_or_never_seen() {
        let filter = NodeFilter {
            not_seen_since_secs: Some(3600),
            ..NodeFilter::default()
        };
        assert_eq!(names(fleet(), &filter), ["stale", "never"]);
        // Exactly at the limit is not older.
        let filter = NodeFilter {
            not_seen_since_secs: Some(60),
            ..NodeFilter::default()
        };
        assert_eq!(names(fleet(), &filter), ["stale", "never"]);
    }

    #[test]
    fn filters_combine() {
        let mut records = fleet();
        records.push(node(
            "both",
            Some(NOW),
            Some(report(NOW + DAY, "failed", &[])),
        ));
        let filter = NodeFilter {
            expiring_within_secs: Some(7 * 86_400),
            failed: true,
            not_seen_since_secs: None,
        };
        assert_eq!(names(records, &filter), ["both"]);
    }

    #[test]
    fn the_summary_orders_expiry_and_reports_health_and_drift() {
        let summary = summary_of(&node("n", None, Some(report(NOW + DAY, "failed", &[]))));
        assert_eq!(summary.revision.as_deref(), Some("rev-1"));
        assert_eq!(summary.certificates[0].component, "calico-node");
        assert_eq!(summary.certificates[0].not_after, NOW + DAY);
        assert_eq!(summary.failed_units, ["calico-node.service (failed)"]);
        assert!(summary.failed && !summary.drift);

        let mut rolled_back = report(NOW + DAY, "active", &[]);
        rolled_back["identities"][1]["status"] = json!("rolled_back");
        let summary = summary_of(&node("n", None, Some(rolled_back)));
        assert_eq!(summary.unconverged, ["calico-node: rolled_back"]);
        assert!(summary.drift && !summary.failed);

        let summary = summary_of(&node("n", None, Some(json!({"nonsense": true}))));
        assert!(summary.failed && summary.drift, "{summary:?}");
        assert_eq!(summary_of(&node("n", None, None)), Summary::default());
    }

    /// Issue 19, point 2: what the server sends for `nodes list` is what the CLI reads, typed.
    #[test]
    fn an_inventory_row_reads_as_the_cli_s_node_listing() {
        for record in fleet() {
            let row = InventoryRow {
                inventory: summary_of(&record),
                record,
                current_revision: Some("rev-2".into()),
                convergence: None,
            };
            let json = serde_json::to_value(&row).unwrap();
            let listing: calseg_api::admin::NodeListing = serde_json::from_value(json).unwrap();
            assert_eq!(listing.name, row.record.name);
            assert_eq!(listing.state, "approved");
            assert_eq!(listing.enrolled_at, row.record.enrolled_at.unix_timestamp());
            assert_eq!(
                listing.last_seen,
                row.record.last_seen.map(OffsetDateTime::unix_timestamp)
            );
            assert_eq!(listing.inventory, row.inventory);
            assert_eq!(listing.last_report, row.record.last_report);
            assert_eq!(listing.current_revision.as_deref(), Some("rev-2"));
        }
        // The record alone (the answer of approve, deny and revoke), with its keys.
        let mut record = NodeRecord::new("w-9", NodeState::Pending, at(NOW));
        record.pending_key = Some(crate::store::PendingKey {
            fingerprint: "sha256:00ff".into(),
            source: "10.0.0.9:4711".into(),
        });
        record.fleet_cert = Some(crate::store::FleetCert {
            serial: "0a".into(),
            not_after: at(NOW + DAY),
            key_fingerprint: Some("sha256:00ff".into()),
            issuer: None,
        });
        let listing: calseg_api::admin::NodeListing =
            serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
        assert_eq!(listing.state, "pending");
        let key = listing.pending_key.unwrap();
        assert_eq!(
            (key.fingerprint.as_str(), key.source.as_str()),
            ("sha256:00ff", "10.0.0.9:4711")
        );
        let fleet = listing.fleet_cert.unwrap();
        assert_eq!((fleet.serial.as_str(), fleet.not_after), ("0a", NOW + DAY));
        assert_eq!(fleet.key_fingerprint.as_deref(), Some("sha256:00ff"));
        assert_eq!(listing.inventory, Summary::default());
    }
}
