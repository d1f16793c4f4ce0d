//! Phase 6: the IPAM operations of the node's tunnel address allocation (libcalico-go
//! `lib/ipam`: `GetIPAMConfig` reads `/calico/ipam/v2/config`, creating it when missing;
//! `claimAffineBlock` writes the affinity `pending`, creates the block, confirms the affinity;
//! the handle records the address; the tunnel-address allocator then updates the Node). Every
//! write is a Create or Update transaction, so each needs write whether or not the key exists.

use super::Report;
use crate::replay::datastore::{Created, Datastore};
use crate::replay::error::ReplayError;
use crate::replay::keys;
use crate::replay::values;
use serde_json::json;

/// Phase 6: IPAM config, affinity, block, handle, and the tunnel address on the node's Node.
pub async fn claim_block(ds: &mut Datastore, node: &str) -> Result<Report, ReplayError> {
    let cidr = keys::block_cidr(node);
    let affinity = keys::block_affinity(node, &cidr);
    let block = keys::block(&cidr);
    let handle_id = keys::tunnel_handle_id(node);
    let handle = keys::handle(&handle_id);
    let mut notes = Vec::new();

    // Claiming a block reads IPAM's configuration first, creating it when missing.
    if ds.get(keys::IPAM_CONFIG).await?.is_none()
        && ds
            .create(keys::IPAM_CONFIG, &values::ipam_config(), None)
            .await?
            == Created::New
    {
        notes.push(format!(
            "had to create {}: cluster-wide write",
            keys::IPAM_CONFIG
        ));
    }
    let claimed = ds
        .create(&affinity, &values::block_affinity("pending"), None)
        .await?;
    let block_created = ds
        .create(
            &block,
            &values::allocation_block(&cidr, node, &handle_id),
            None,
        )
        .await?;
    if claimed == Created::New {
        let stored = ds.get(&affinity).await?.ok_or_else(|| {
            ReplayError::datastore("get", &affinity, "the affinity just created is gone")
        })?;
        ds.update(
            &affinity,
            &values::block_affinity("confirmed"),
            stored.mod_revision,
        )
        .await?;
    }
    ds.create(&handle, &values::ipam_handle(&cidr), None)
        .await?;

    let tunnel_ip = cidr.split('/').next().unwrap_or_default().to_owned();
    let node_key = keys::resource("nodes", node);
    let stored = ds.get(&node_key).await?.ok_or_else(|| {
        ReplayError::datastore("get", &node_key, "the node's Node resource is gone")
    })?;
    if stored.value["spec"]["bgp"]["ipv4IPIPTunnelAddr"] != json!(tunnel_ip) {
        let mut value = values::for_update(stored.value);
        value["spec"]["bgp"]["ipv4IPIPTunnelAddr"] = json!(tunnel_ip);
        ds.update(&node_key, &value, stored.mod_revision).await?;
    }
    let shared = match block_created {
        Created::New => "created",
        Created::Existed => "already there (shared)",
    };
    let mut report = Report::new(
        6,
        "ipam",
        format!(
            "affinity {affinity}, block {cidr} {shared}, handle {handle_id}, tunnel address {tunnel_ip}"
        ),
    );
    report.notes = notes;
    Ok(report)
}
