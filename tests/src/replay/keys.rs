//! Every etcd key and prefix the replay touches, built the way libcalico-go's model builds them
//! (`lib/backend/model`: `resource.go` for v3 resources, `statusreports.go`,
//! `hostendpointstatus.go`, `block.go`, `block_affinity.go`, `ipam_handle.go`).

/// Where libcalico-go keeps v3 resources: `R3/<plural>/[<namespace>/]<name>`.
pub const R3: &str = "/calico/resources/v3/projectcalico.org";

/// The singleton objects node start-up reads (and creates only when missing).
pub const CLUSTER_INFORMATION: &str =
    "/calico/resources/v3/projectcalico.org/clusterinformations/default";
pub const FELIX_CONFIGURATION: &str =
    "/calico/resources/v3/projectcalico.org/felixconfigurations/default";
pub const BGP_CONFIGURATION: &str =
    "/calico/resources/v3/projectcalico.org/bgpconfigurations/default";

/// The IP pool prefix (listed at start-up) and the default pools' names.
pub const IPPOOLS: &str = "/calico/resources/v3/projectcalico.org/ippools/";
pub const DEFAULT_IPV4_POOL: &str = "default-ipv4-ippool";
pub const DEFAULT_IPV6_POOL: &str = "default-ipv6-ippool";

/// The v3 resource kinds Felix's and confd's syncers list and watch, whole prefixes.
const WATCHED_KINDS: &[&str] = &[
    "clusterinformations",
    "felixconfigurations",
    "globalnetworkpolicies",
    "globalnetworksets",
    "ippools",
    "nodes",
    "profiles",
    "workloadendpoints",
    "networkpolicies",
    "networksets",
    "tiers",
    "hostendpoints",
    "bgpconfigurations",
    "bgppeers",
];

/// The key of v3 resource `name` of kind `plural` (cluster-scoped).
pub fn resource(plural: &str, name: &str) -> String {
    format!("{R3}/{plural}/{name}")
}

/// The prefixes the node lists and then watches, each with the trailing slash etcdv3's
/// `calculateListKeyAndOptions` adds: the resource kinds, the IPAM blocks (Felix with Calico
/// IPAM) and the node's own block affinities (confd).
pub fn watched_prefixes(node: &str) -> Vec<String> {
    WATCHED_KINDS
        .iter()
        .map(|kind| format!("{R3}/{kind}/"))
        .chain([
            "/calico/ipam/v2/assignment/".to_owned(),
            format!("/calico/ipam/v2/host/{node}/"),
        ])
        .collect()
}

/// Felix's status report (written with a lease) and its last copy (no lease).
pub fn felix_status(node: &str) -> String {
    format!("/calico/felix/v2/no-region/host/{node}/status")
}
pub fn felix_last_status(node: &str) -> String {
    format!("/calico/felix/v2/no-region/host/{node}/last_reported_status")
}

/// The status Felix reports for host endpoint `endpoint`.
pub fn host_endpoint_status(node: &str, endpoint: &str) -> String {
    format!("/calico/felix/v1/host/{node}/endpoint/{endpoint}")
}

/// The /26 block the replay claims for `node`: `10.65.<n>.0/26`, `n` a stable hash of the name
/// (FNV-1a, the same on every machine and run), so nodes rarely share a block. When two do,
/// the block is shared as IPAM allows; each node still writes only its own affinity.
pub fn block_cidr(node: &str) -> String {
    let hash = node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("10.65.{}.0/26", hash % 256)
}

/// The IPAM block itself (shared by design: any node may allocate from it).
pub fn block(cidr: &str) -> String {
    format!(
        "/calico/ipam/v2/assignment/ipv4/block/{}",
        cidr.replace('/', "-")
    )
}

/// The node's affinity to a block.
pub fn block_affinity(node: &str, cidr: &str) -> String {
    format!(
        "/calico/ipam/v2/host/{node}/ipv4/block/{}",
        cidr.replace('/', "-")
    )
}

/// IPAM's own configuration (libcalico-go `model/ipam_config.go`): every allocation that may
/// claim a block reads it, and `GetIPAMConfig` creates it when missing.
pub const IPAM_CONFIG: &str = "/calico/ipam/v2/config";

/// The IPAM handle of the node's IPIP tunnel address.
pub fn tunnel_handle_id(node: &str) -> String {
    format!("ipip-tunnel-addr-{node}")
}
pub fn handle(handle_id: &str) -> String {
    format!("/calico/ipam/v2/handle/{handle_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_libcalico_go_paths() {
        assert_eq!(resource("nodes", "n1"), format!("{R3}/nodes/n1"));
        assert_eq!(
            CLUSTER_INFORMATION,
            resource("clusterinformations", "default")
        );
        assert_eq!(
            FELIX_CONFIGURATION,
            resource("felixconfigurations", "default")
        );
        assert_eq!(BGP_CONFIGURATION, resource("bgpconfigurations", "default"));
        assert_eq!(IPPOOLS, format!("{R3}/ippools/"));
        assert_eq!(
            felix_status("n1"),
            "/calico/felix/v2/no-region/host/n1/status"
        );
        assert_eq!(
            block("10.65.3.0/26"),
            "/calico/ipam/v2/assignment/ipv4/block/10.65.3.0-26"
        );
        assert_eq!(
            block_affinity("n1", "10.65.3.0/26"),
            "/calico/ipam/v2/host/n1/ipv4/block/10.65.3.0-26"
        );
        assert_eq!(
            handle(&tunnel_handle_id("n1")),
            "/calico/ipam/v2/handle/ipip-tunnel-addr-n1"
        );
    }

    #[test]
    fn every_watched_prefix_ends_in_a_slash() {
        let prefixes = watched_prefixes("n1");
        assert_eq!(prefixes.len(), 16);
        assert!(prefixes.iter().all(|p| p.ends_with('/')));
        assert!(prefixes.contains(&"/calico/ipam/v2/host/n1/".to_owned()));
    }

    #[test]
    fn the_block_is_stable_and_differs_between_the_test_nodes() {
        assert_eq!(block_cidr("replay-node-1"), block_cidr("replay-node-1"));
        assert_ne!(block_cidr("replay-node-1"), block_cidr("replay-node-2"));
        assert!(block_cidr("x").starts_with("10.65.") && block_cidr("x").ends_with(".0/26"));
    }
}
