//! The server's word over the node's: a report names the certificates a node installed, but
//! their dates come from what this server issued. A node (or whoever holds its fleet key) can
//! claim an expiry of 2099 or a serial it never received; the inventory, the expiry filters and
//! the metrics must not believe it.

use crate::store::IssuedRecord;
use calseg_api::report::Report;
use time::format_description::well_known::Rfc3339;

/// `report` with each identity's `not_after` replaced by the expiry this server recorded when
/// it issued that serial to `node` for that component. A serial it did not issue there loses
/// its date and adds an error to the report, so the node shows as drifted.
pub fn vouch(mut report: Report, node: &str, issued: &[IssuedRecord]) -> Report {
    for identity in &mut report.identities {
        let Some(serial) = identity.serial.as_deref() else {
            // Nothing installed that the server could vouch for.
            identity.not_after = None;
            continue;
        };
        let record = issued.iter().find(|r| {
            r.serial.eq_ignore_ascii_case(serial)
                && r.node == node
                && r.component == identity.component
        });
        match record {
            Some(record) => identity.not_after = record.not_after.format(&Rfc3339).ok(),
            None => {
                identity.not_after = None;
                report.errors.push(format!(
                    "{}: the installed certificate (serial {serial}) is not one this server \
                     issued to {node} for that component; its expiry is not shown",
                    identity.component
                ));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use calseg_api::report::IdentityReport;
    use time::OffsetDateTime;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn issued(serial: &str, node: &str, component: &str, not_after: i64) -> IssuedRecord {
        IssuedRecord {
            serial: serial.into(),
            cn: format!("{component}.{node}"),
            node: node.into(),
            component: component.into(),
            not_before: at(0),
            not_after: at(not_after),
            issued_at: at(0),
            issuer: None,
        }
    }

    fn claim(component: &str, serial: Option<&str>, not_after: &str) -> IdentityReport {
        IdentityReport {
            component: component.into(),
            serial: serial.map(str::to_owned),
            not_after: Some(not_after.into()),
            status: "installed".into(),
        }
    }

    fn report(identities: Vec<IdentityReport>) -> Report {
        Report {
            revision: "r1".into(),
            identities,
            units: vec![],
            errors: vec![],
        }
    }

    #[test]
    fn the_issued_expiry_replaces_the_claimed_one() {
        let records = [issued("0a1b", "node1", "calico-node", 1_800_000_000)];
        let vouched = vouch(
            report(vec![claim(
                "calico-node",
                Some("0A1B"),
                "2099-01-01T00:00:00Z",
            )]),
            "node1",
            &records,
        );
        assert_eq!(
            vouched.identities[0].not_after.as_deref(),
            Some("2027-01-15T08:00:00Z")
        );
        assert!(vouched.errors.is_empty(), "{:?}", vouched.errors);
    }

    #[test]
    fn a_serial_not_issued_to_this_node_and_component_loses_its_date_and_is_an_error() {
        let records = [
            issued("01", "node2", "calico-node", 1_800_000_000),
            issued("02", "node1", "cni-plugin", 1_800_000_000),
        ];
        let vouched = vouch(
            report(vec![
                claim("calico-node", Some("01"), "2099-01-01T00:00:00Z"),
                claim("calico-node", Some("02"), "2099-01-01T00:00:00Z"),
                claim("calico-node", Some("ff"), "2099-01-01T00:00:00Z"),
                claim("calico-node", None, "2099-01-01T00:00:00Z"),
            ]),
            "node1",
            &records,
        );
        assert!(vouched.identities.iter().all(|i| i.not_after.is_none()));
        assert_eq!(vouched.errors.len(), 3, "{:?}", vouched.errors);
        assert!(vouched.errors[0].contains("serial 01") && vouched.errors[0].contains("node1"));
    }
}
