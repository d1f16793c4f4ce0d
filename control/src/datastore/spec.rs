//! The spec of each object, as Go's `encoding/json` writes libcalico-go's structs: field names
//! from the `json` tags of `api/pkg/apis/projectcalico/v3` (`clusterinfo.go`, `felixconfig.go`,
//! `ippool.go`, `bgpconfig.go`, `ipamconfig.go`), fields in struct order, `omitempty` fields
//! left out when empty (pointer fields only when nil), and the values node start-up gives them
//! (`node/pkg/lifecycle/startup/startup.go`) plus each kind's Create defaults
//! (`libcalico-go/lib/clientv3/ippool.go validateAndSetDefaults`, `felixconfig.go setDefaults`).

use serde::Serialize;

use super::objects::since;
use crate::policy::{CalicoVersion, DatastoreSettings};

/// `ClusterInformationSpec`, as `ensureClusterInformation` (`clientv3/client.go`) creates it.
#[derive(Debug, Serialize)]
pub(super) struct ClusterInformation {
    /// Hex of a random v4 UUID's bytes (`hex.EncodeToString(uuid.New())`): 32 characters.
    #[serde(rename = "clusterGUID")]
    cluster_guid: String,
    #[serde(rename = "clusterType", skip_serializing_if = "String::is_empty")]
    cluster_type: String,
    #[serde(rename = "calicoVersion", skip_serializing_if = "Option::is_none")]
    calico_version: Option<String>,
    #[serde(rename = "datastoreReady")]
    datastore_ready: bool,
}

impl ClusterInformation {
    pub(super) fn new(cluster_guid: String, settings: &DatastoreSettings) -> Self {
        Self {
            cluster_guid,
            cluster_type: settings.cluster_type.clone(),
            calico_version: settings.calico_release.clone(),
            datastore_ready: true,
        }
    }
}

/// `FelixConfigurationSpec` of `default`, as `ensureDefaultConfig` creates it.
#[derive(Debug, Serialize)]
pub(super) struct FelixConfiguration {
    #[serde(rename = "logSeverityScreen")]
    log_severity_screen: String,
    /// `metav1.Duration{0}`: Felix's status reports off.
    #[serde(rename = "reportingInterval")]
    reporting_interval: &'static str,
    #[serde(
        rename = "bpfConnectTimeLoadBalancing",
        skip_serializing_if = "Option::is_none"
    )]
    bpf_connect_time_load_balancing: Option<&'static str>,
    #[serde(
        rename = "bpfHostNetworkedNATWithoutCTLB",
        skip_serializing_if = "Option::is_none"
    )]
    bpf_host_networked_nat_without_ctlb: Option<&'static str>,
    #[serde(rename = "floatingIPs", skip_serializing_if = "Option::is_none")]
    floating_ips: Option<&'static str>,
}

impl FelixConfiguration {
    pub(super) fn new(version: CalicoVersion, settings: &DatastoreSettings) -> Self {
        let ctlb = version >= since::BPF_CTLB;
        Self {
            log_severity_screen: settings.log_severity.clone(),
            reporting_interval: "0s",
            bpf_connect_time_load_balancing: ctlb.then_some("TCP"),
            bpf_host_networked_nat_without_ctlb: ctlb.then_some("Enabled"),
            floating_ips: (version >= since::FLOATING_IPS).then_some("Disabled"),
        }
    }
}

/// `IPPoolSpec` of `default-ipv4-ippool`, as `createIPPool` creates it.
#[derive(Debug, Serialize)]
pub(super) struct IpPool {
    cidr: String,
    #[serde(rename = "vxlanMode")]
    vxlan_mode: &'static str,
    #[serde(rename = "ipipMode")]
    ipip_mode: &'static str,
    #[serde(rename = "natOutgoing", skip_serializing_if = "is_false")]
    nat_outgoing: bool,
    #[serde(rename = "blockSize")]
    block_size: u8,
    #[serde(rename = "nodeSelector")]
    node_selector: &'static str,
    #[serde(rename = "allowedUses", skip_serializing_if = "Option::is_none")]
    allowed_uses: Option<[&'static str; 2]>,
    #[serde(rename = "assignmentMode", skip_serializing_if = "Option::is_none")]
    assignment_mode: Option<&'static str>,
}

impl IpPool {
    pub(super) fn new(version: CalicoVersion, settings: &DatastoreSettings) -> Self {
        Self {
            cidr: settings.ipv4_pool_cidr.clone(),
            vxlan_mode: settings.vxlan_mode.as_str(),
            ipip_mode: settings.ipip_mode.as_str(),
            nat_outgoing: settings.nat_outgoing,
            block_size: settings.block_size,
            node_selector: "all()",
            allowed_uses: (version >= since::ALLOWED_USES).then_some(["Workload", "Tunnel"]),
            assignment_mode: (version >= since::ASSIGNMENT_MODE).then_some("Automatic"),
        }
    }
}

/// `BGPConfigurationSpec` of `default`. Node start-up creates it empty; calseg writes the
/// values an empty one means, from the policy.
#[derive(Debug, Serialize)]
pub(super) struct BgpConfiguration {
    #[serde(rename = "logSeverityScreen")]
    log_severity_screen: String,
    #[serde(rename = "nodeToNodeMeshEnabled")]
    node_to_node_mesh_enabled: bool,
    /// `numorstring.ASNumber` has no MarshalJSON: a JSON number.
    #[serde(rename = "asNumber")]
    as_number: u32,
}

impl BgpConfiguration {
    pub(super) fn new(settings: &DatastoreSettings) -> Self {
        Self {
            log_severity_screen: settings.log_severity.clone(),
            node_to_node_mesh_enabled: settings.node_to_node_mesh,
            as_number: settings.as_number,
        }
    }
}

/// `IPAMConfigurationSpec` of `default`, as `ensureDefaultIPAMConfigExists` creates it:
/// strictAffinity false, autoAllocateBlocks true, maxBlocksPerHost 0 (`omitempty`, so absent).
#[derive(Debug, Serialize)]
pub(super) struct IpamConfiguration {
    #[serde(rename = "strictAffinity")]
    strict_affinity: bool,
    #[serde(rename = "maxBlocksPerHost", skip_serializing_if = "is_zero")]
    max_blocks_per_host: i32,
    #[serde(rename = "autoAllocateBlocks")]
    auto_allocate_blocks: bool,
}

impl Default for IpamConfiguration {
    fn default() -> Self {
        Self {
            strict_affinity: false,
            max_blocks_per_host: 0,
            auto_allocate_blocks: true,
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}
