//! The values the replay writes, in libcalico-go's JSON shapes, minimal but valid: v3 resources
//! as `resources.go` stores them (kind, apiVersion `projectcalico.org/v3`, metadata with name,
//! uid and creationTimestamp, no resourceVersion; spec field names from
//! `api/pkg/apis/projectcalico/v3` and `lib/apis/v3/node.go`), Felix status reports
//! (`model/statusreports.go`), host endpoint status (`model/hostendpointstatus.go`) and IPAM
//! blocks, affinities and handles (`model/block.go`, `block_affinity.go`, `ipam_handle.go`).

use super::version::{CalicoVersion, Tier};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `now` as Kubernetes and Felix write times: RFC 3339, whole seconds, UTC.
pub fn timestamp(now: OffsetDateTime) -> String {
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// `len` random bytes as hex, from the kernel (`/dev/urandom`); the clock and pid when that
/// cannot be read (these are object ids, not secrets).
fn random_hex(len: usize) -> String {
    use std::io::Read;
    let mut bytes = vec![0u8; len];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let seed =
            OffsetDateTime::now_utc().unix_timestamp_nanos() ^ i128::from(std::process::id());
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    hex::encode(bytes)
}

/// A random UUID in its usual text form, as `metadata.uid`.
fn uid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A new v3 resource of `kind` named `name` with `spec`.
pub fn resource(kind: &str, name: &str, spec: Value, now: OffsetDateTime) -> Value {
    json!({
        "kind": kind,
        "apiVersion": "projectcalico.org/v3",
        "metadata": { "name": name, "uid": uid(), "creationTimestamp": timestamp(now) },
        "spec": spec,
    })
}

/// A new cluster GUID: 16 random bytes as hex, as `ensureClusterInformation` makes it.
pub fn cluster_guid() -> String {
    random_hex(16)
}

/// ClusterInformation `default` as `ensureClusterInformation` creates it.
pub fn cluster_information(
    version: CalicoVersion,
    cluster_type: &str,
    now: OffsetDateTime,
) -> Value {
    let mut spec = json!({
        "clusterGUID": cluster_guid(),
        "calicoVersion": version.to_string(),
        "datastoreReady": true,
    });
    if !cluster_type.is_empty() {
        spec["clusterType"] = json!(cluster_type);
    }
    resource("ClusterInformation", "default", spec, now)
}

/// FelixConfiguration `default` as node start-up creates it (reporting off, screen logging).
pub fn felix_configuration_default(now: OffsetDateTime) -> Value {
    let spec = json!({ "reportingInterval": "0s", "logSeverityScreen": "Info" });
    resource("FelixConfiguration", "default", spec, now)
}

/// FelixConfiguration `node.<node>` as node start-up creates it in etcd mode.
pub fn felix_configuration_node(node: &str, now: OffsetDateTime) -> Value {
    let spec = json!({ "defaultEndpointToHostAction": "Return" });
    resource("FelixConfiguration", &format!("node.{node}"), spec, now)
}

/// A default IP pool as `createIPPool` creates it with no CALICO_IPV*POOL_* settings.
pub fn ip_pool(name: &str, cidr: &str, ipv6: bool, now: OffsetDateTime) -> Value {
    let spec = json!({
        "cidr": cidr,
        "ipipMode": "Never",
        "vxlanMode": "Never",
        "natOutgoing": !ipv6,
        "blockSize": if ipv6 { 122 } else { 26 },
        "nodeSelector": "all()",
    });
    resource("IPPool", name, spec, now)
}

/// BGPConfiguration `default` (an empty spec, as `NewBGPConfiguration`).
pub fn bgp_configuration(now: OffsetDateTime) -> Value {
    resource("BGPConfiguration", "default", json!({}), now)
}

/// A tier as `ensureTierExists` creates it.
pub fn tier(tier: &Tier, now: OffsetDateTime) -> Value {
    let spec = json!({ "order": tier.order, "defaultAction": tier.default_action });
    resource("Tier", tier.name, spec, now)
}

/// The node's Node resource (policy-only shape: no BGP address is detected by a stand-in).
pub fn node(node: &str, now: OffsetDateTime) -> Value {
    resource("Node", node, json!({}), now)
}

/// Felix's status report.
pub fn status_report(now: OffsetDateTime, uptime_seconds: f64, first_update: bool) -> Value {
    json!({ "time": timestamp(now), "uptime": uptime_seconds, "first_update": first_update })
}

/// A host endpoint's status as Felix reports it.
pub fn host_endpoint_status() -> Value {
    json!({ "status": "up" })
}

/// IPAM's configuration as `GetIPAMConfig` creates it (strict affinity off, automatic blocks).
pub fn ipam_config() -> Value {
    json!({ "auto_allocate_blocks": true })
}

/// A block affinity in `state` (`pending` while claiming, then `confirmed`).
pub fn block_affinity(state: &str) -> Value {
    json!({ "state": state, "deleted": false })
}

/// A /26 block affine to `node` with its first address allocated to `handle_id` (the tunnel).
pub fn allocation_block(cidr: &str, node: &str, handle_id: &str) -> Value {
    let mut allocations = vec![Value::Null; 64];
    allocations[0] = json!(0);
    json!({
        "cidr": cidr,
        "affinity": format!("host:{node}"),
        "allocations": allocations,
        "unallocated": (1..64).collect::<Vec<u32>>(),
        "attributes": [{
            "handle_id": handle_id,
            "secondary": { "node": node, "type": "ipipTunnelAddress" },
        }],
        "sequenceNumber": 0,
        "sequenceNumberForAllocation": { "0": 0 },
        "deleted": false,
    })
}

/// The IPAM handle holding one address in `cidr`.
pub fn ipam_handle(cidr: &str) -> Value {
    json!({ "block": { cidr: 1 }, "deleted": false })
}

/// A stored value made ready to write back (Calico clears `resourceVersion` before storing).
pub fn for_update(mut stored: Value) -> Value {
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn a_resource_carries_type_and_object_metadata() {
        let r = node("n1", at());
        assert_eq!(r["kind"], "Node");
        assert_eq!(r["apiVersion"], "projectcalico.org/v3");
        assert_eq!(r["metadata"]["name"], "n1");
        assert_eq!(r["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        let uid = r["metadata"]["uid"].as_str().unwrap();
        assert_eq!(uid.len(), 36);
        assert_ne!(uid, node("n1", at())["metadata"]["uid"].as_str().unwrap());
    }

    #[test]
    fn the_block_allocates_only_the_tunnel_address() {
        let b = allocation_block("10.65.1.0/26", "n1", "ipip-tunnel-addr-n1");
        assert_eq!(b["allocations"].as_array().unwrap().len(), 64);
        assert_eq!(b["allocations"][0], 0);
        assert!(b["allocations"][1].is_null());
        assert_eq!(b["unallocated"].as_array().unwrap().len(), 63);
        assert_eq!(b["affinity"], "host:n1");
    }

    #[test]
    fn for_update_drops_only_the_resource_version() {
        let mut r = node("n1", at());
        r["metadata"]["resourceVersion"] = json!("12");
        let r = for_update(r);
        assert!(r["metadata"].get("resourceVersion").is_none());
        assert_eq!(r["metadata"]["name"], "n1");
    }
}
