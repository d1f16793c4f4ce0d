//! Phase 3: the node's own objects, as node start-up writes them (`getNode`, `CreateOrUpdate`
//! and the etcd-only `node.<node>` FelixConfiguration of `ensureDefaultConfig`, node
//! `pkg/lifecycle/startup/startup.go`): Get, then a Create transaction when missing, else an
//! Update transaction on the ModRevision just read.

use super::Report;
use crate::replay::datastore::Datastore;
use crate::replay::error::ReplayError;
use crate::replay::keys;
use crate::replay::settings::Settings;
use crate::replay::values;
use serde_json::json;
use time::OffsetDateTime;

/// Phase 3: `R3/nodes/<node>` create-or-update, `R3/felixconfigurations/node.<node>` created
/// when missing (and completed when it has no `defaultEndpointToHostAction`).
pub async fn own_objects(
    ds: &mut Datastore,
    s: &Settings,
    now: OffsetDateTime,
) -> Result<Report, ReplayError> {
    let node_key = keys::resource("nodes", &s.node);
    let node = match ds.get(&node_key).await? {
        None => {
            ds.create(&node_key, &values::node(&s.node, now), None)
                .await?;
            "created"
        }
        Some(stored) => {
            ds.update(
                &node_key,
                &values::for_update(stored.value),
                stored.mod_revision,
            )
            .await?;
            "updated"
        }
    };
    let felix_key = keys::resource("felixconfigurations", &format!("node.{}", s.node));
    let felix = match ds.get(&felix_key).await? {
        None => {
            ds.create(
                &felix_key,
                &values::felix_configuration_node(&s.node, now),
                None,
            )
            .await?;
            "created"
        }
        Some(stored)
            if stored.value["spec"]["defaultEndpointToHostAction"]
                .as_str()
                .unwrap_or_default()
                .is_empty() =>
        {
            let mut value = values::for_update(stored.value);
            value["spec"]["defaultEndpointToHostAction"] = json!("Return");
            ds.update(&felix_key, &value, stored.mod_revision).await?;
            "updated"
        }
        Some(_) => "present",
    };
    Ok(Report::new(
        3,
        "node objects",
        format!(
            "{node} nodes/{}, {felix} felixconfigurations/node.{}",
            s.node, s.node
        ),
    ))
}
