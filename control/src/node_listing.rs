//! What `nodes list` and `nodes show` see: each node's inventory row (record, last report,
//! the manifest revision the policy gives it and whether it converged to it) and, for one
//! node, the newest certificate issued to it per component.

use crate::ControlError;
use crate::approval::known_node;
use crate::inventory::{self, InventoryRow, NodeFilter};
use crate::state::Control;
use crate::store::{IssuedRecord, NodeRecord};
use calseg_api::admin::IssuedIdentity;
use calseg_api::when::rfc3339;
use time::OffsetDateTime;

/// The nodes that pass `filter`, as inventory rows annotated with their convergence.
pub async fn list(
    control: &Control,
    filter: &NodeFilter,
) -> Result<Vec<InventoryRow>, ControlError> {
    let nodes = control.store(|s| s.nodes()).await?;
    Ok(rows(control, nodes, filter))
}

/// One node as `nodes show` reads it (`calseg_api::admin::NodeListing`): its inventory row
/// and the newest certificate issued per component.
#[derive(serde::Serialize)]
pub struct NodeShown {
    #[serde(flatten)]
    pub row: InventoryRow,
    pub identities: Vec<IssuedIdentity>,
}

/// One node with its current identities, or `unknown_node`.
pub async fn show(control: &Control, node: &str) -> Result<NodeShown, ControlError> {
    let record = known_node(control, node).await?;
    let row = rows(control, vec![record], &NodeFilter::default())
        .pop()
        .ok_or_else(|| ControlError::internal("the node vanished"))?;
    let name = row.record.name.clone();
    let issued = control.store(move |s| s.issued_for_node(&name)).await?;
    Ok(NodeShown {
        row,
        identities: current_identities(issued),
    })
}

fn rows(control: &Control, nodes: Vec<NodeRecord>, filter: &NodeFilter) -> Vec<InventoryRow> {
    let mut rows = inventory::select(nodes, filter, OffsetDateTime::now_utc());
    crate::rollout::annotate(
        &mut rows,
        &|node| control.policy_for(node).0,
        &control.trust(),
    );
    rows
}

/// The newest certificate issued per component: component, etcd user (the CN), serial,
/// notBefore and notAfter in RFC 3339.
fn current_identities(mut issued: Vec<IssuedRecord>) -> Vec<IssuedIdentity> {
    issued.sort_by(|a, b| (&a.component, b.issued_at).cmp(&(&b.component, a.issued_at)));
    issued.dedup_by(|later, first| later.component == first.component);
    issued
        .iter()
        .map(|r| IssuedIdentity {
            component: r.component.clone(),
            etcd_user: r.cn.clone(),
            serial: r.serial.clone(),
            not_before: rfc3339(&r.not_before),
            not_after: rfc3339(&r.not_after),
        })
        .collect()
}
