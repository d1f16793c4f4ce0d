//! The certificates whose expiry `calseg_certificate_expiration_timestamp_seconds` shows, as
//! cert-manager's `certmanager_certificate_expiration_timestamp_seconds` does: one series per
//! live identity, from the server's own issuance records (never an agent's claim). Live means
//! of an approved node: revoking a node takes its series away at the next scrape. Per
//! component, the latest certificate issued; the node's fleet certificate as component
//! `fleet`.

use crate::store::{IssuedRecord, NodeRecord, NodeState, StoreError};
use std::collections::BTreeMap;

/// One series: node, component and the certificate's `notAfter` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub node: String,
    pub component: String,
    pub not_after: i64,
}

/// The expiry of each live identity of `nodes`, with `issued_for` a node's issuance records
/// (the store's `issued_for_node`); ordered by node, component.
pub fn live_identities(
    nodes: &[NodeRecord],
    issued_for: impl Fn(&str) -> Result<Vec<IssuedRecord>, StoreError>,
) -> Result<Vec<Expiry>, StoreError> {
    let mut out = Vec::new();
    for node in nodes.iter().filter(|n| n.state == NodeState::Approved) {
        if let Some(fleet) = &node.fleet_cert {
            out.push(Expiry {
                node: node.name.clone(),
                component: "fleet".to_owned(),
                not_after: fleet.not_after.unix_timestamp(),
            });
        }
        out.extend(latest_per_component(issued_for(&node.name)?));
    }
    out.sort_by(|a, b| (&a.node, &a.component).cmp(&(&b.node, &b.component)));
    Ok(out)
}

/// The latest-issued component certificate of each component in `issued` (one node's).
pub fn latest_per_component(issued: Vec<IssuedRecord>) -> Vec<Expiry> {
    let mut latest: BTreeMap<String, IssuedRecord> = BTreeMap::new();
    for record in issued.into_iter().filter(|r| r.component != "fleet") {
        let newer = latest.get(&record.component).is_none_or(|kept| {
            (record.issued_at, record.not_after) >= (kept.issued_at, kept.not_after)
        });
        if newer {
            latest.insert(record.component.clone(), record);
        }
    }
    latest
        .into_values()
        .map(|r| Expiry {
            node: r.node,
            component: r.component,
            not_after: r.not_after.unix_timestamp(),
        })
        .collect()
}
