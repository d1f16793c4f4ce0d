//! The objects `datastore init` writes, per Calico release, as the exact bytes libcalico-go's
//! etcdv3 backend stores: `json.Marshal` of the v3 resource (compact; fields in the Go structs'
//! order; `omitempty` fields left out when empty), with the metadata clientv3 `resources.go`
//! adds on Create (a v4 `uid`, a `creationTimestamp` in whole UTC seconds, no
//! `resourceVersion`) and the defaults each kind's Create applies before storing.

use serde::Serialize;
use time::OffsetDateTime;

use super::spec;
use crate::policy::{CalicoVersion, DatastoreSettings};

/// Where libcalico-go keeps v3 resources: `R3/<plural>/<name>` (`model/resource.go`).
pub const R3: &str = "/calico/resources/v3/projectcalico.org";
/// The `apiVersion` of every v3 resource.
pub const API_VERSION: &str = "projectcalico.org/v3";
/// The prefix calico-node lists to find out whether an IPv4 pool exists.
pub const IPPOOLS_PREFIX: &str = "/calico/resources/v3/projectcalico.org/ippools/";
/// calico-node's default IPv4 pool (node `startup.go`, `DEFAULT_IPV4_POOL_NAME`).
pub const DEFAULT_IPV4_POOL: &str = "default-ipv4-ippool";

/// The kinds `datastore init` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Kind {
    ClusterInformation,
    FelixConfiguration,
    #[serde(rename = "IPPool")]
    IpPool,
    #[serde(rename = "BGPConfiguration")]
    BgpConfiguration,
    #[serde(rename = "IPAMConfiguration")]
    IpamConfiguration,
    /// IPAM's own settings key `/calico/ipam/v2/config` (libcalico-go `model/ipam_config.go`),
    /// not a v3 resource: every block claim reads it and creates it when missing.
    #[serde(rename = "IPAMConfig")]
    IpamConfig,
}

impl Kind {
    /// The `kind` libcalico-go writes (`Kind*` constants of `api/pkg/apis/projectcalico/v3`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterInformation => "ClusterInformation",
            Self::FelixConfiguration => "FelixConfiguration",
            Self::IpPool => "IPPool",
            Self::BgpConfiguration => "BGPConfiguration",
            Self::IpamConfiguration => "IPAMConfiguration",
            Self::IpamConfig => "IPAMConfig",
        }
    }

    /// The key segment (`registerResourceInfo` in `model/resource.go`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::ClusterInformation => "clusterinformations",
            Self::FelixConfiguration => "felixconfigurations",
            Self::IpPool => "ippools",
            Self::BgpConfiguration => "bgpconfigurations",
            Self::IpamConfiguration => "ipamconfigurations",
            Self::IpamConfig => "config",
        }
    }
}

/// One object calseg would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: Kind,
    pub name: &'static str,
    /// `R3/<plural>/<name>`.
    pub key: String,
    /// The value written, byte for byte.
    pub value: String,
}

/// Releases from which node start-up, or the Create defaults, add an object or a field.
pub mod since {
    use crate::policy::CalicoVersion;
    /// IPPool Create defaults `allowedUses` to Workload, Tunnel (`clientv3/ippool.go`); IPAM
    /// then assigns only from pools that allow the use.
    pub const ALLOWED_USES: CalicoVersion = CalicoVersion::new(3, 22);
    /// FelixConfiguration Create defaults `floatingIPs` (`clientv3/felixconfig.go setDefaults`).
    pub const FLOATING_IPS: CalicoVersion = CalicoVersion::new(3, 23);
    /// ... and `bpfConnectTimeLoadBalancing`, `bpfHostNetworkedNATWithoutCTLB`.
    pub const BPF_CTLB: CalicoVersion = CalicoVersion::new(3, 27);
    /// IPPool Create defaults `assignmentMode` to Automatic; IPAM dereferences it.
    pub const ASSIGNMENT_MODE: CalicoVersion = CalicoVersion::new(3, 30);
    /// node start-up creates `bgpconfigurations/default` (`ensureDefaultBGPConfigExists`).
    pub const BGP_CONFIGURATION: CalicoVersion = CalicoVersion::new(3, 32);
    /// node start-up creates `ipamconfigurations/default` (`ensureDefaultIPAMConfigExists`).
    pub const IPAM_CONFIGURATION: CalicoVersion = CalicoVersion::new(3, 33);
}

/// Where the random parts come from: `metadata.uid` and ClusterInformation's `clusterGUID`.
pub trait RandomSource {
    /// 16 random bytes, or `None` when the source failed.
    fn bytes16(&mut self) -> Option<[u8; 16]>;
}

/// The system's CSPRNG, through ring.
pub struct SystemRandom(pub ring::rand::SystemRandom);

impl RandomSource for SystemRandom {
    fn bytes16(&mut self) -> Option<[u8; 16]> {
        ring::rand::generate::<[u8; 16]>(&self.0)
            .ok()
            .map(|random| random.expose())
    }
}

/// The random source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomFailed;

/// The objects for `version`, in the order node start-up creates them.
pub fn desired(
    version: CalicoVersion,
    settings: &DatastoreSettings,
    now: OffsetDateTime,
    random: &mut dyn RandomSource,
) -> Result<Vec<Object>, RandomFailed> {
    let stamp = timestamp(now);
    let guid = hex::encode(v4_bytes(random.bytes16().ok_or(RandomFailed)?));
    let mut meta = |name: &'static str| -> Result<Metadata, RandomFailed> {
        Ok(Metadata {
            name,
            uid: uuid_v4(random.bytes16().ok_or(RandomFailed)?),
            creation_timestamp: stamp.clone(),
        })
    };
    let mut objects = Vec::new();
    let info = spec::ClusterInformation::new(guid, settings);
    objects.push(object(Kind::ClusterInformation, meta("default")?, info));
    let felix = spec::FelixConfiguration::new(version, settings);
    objects.push(object(Kind::FelixConfiguration, meta("default")?, felix));
    if settings.default_pool {
        let pool = spec::IpPool::new(version, settings);
        objects.push(object(Kind::IpPool, meta(DEFAULT_IPV4_POOL)?, pool));
    }
    if version >= since::BGP_CONFIGURATION {
        let bgp = spec::BgpConfiguration::new(settings);
        objects.push(object(Kind::BgpConfiguration, meta("default")?, bgp));
    }
    if version >= since::IPAM_CONFIGURATION {
        let ipam = spec::IpamConfiguration::default();
        objects.push(object(Kind::IpamConfiguration, meta("default")?, ipam));
    }
    objects.push(ipam_config());
    Ok(objects)
}

/// `R3/<plural>/<name>`; IPAM's settings key for [`Kind::IpamConfig`].
pub fn key(kind: Kind, name: &str) -> String {
    match kind {
        Kind::IpamConfig => IPAM_CONFIG_KEY.to_owned(),
        _ => format!("{R3}/{}/{name}", kind.plural()),
    }
}

/// Where IPAM keeps its settings (`model.IPAMConfigKey`).
pub const IPAM_CONFIG_KEY: &str = "/calico/ipam/v2/config";

/// IPAM's settings as `GetIPAMConfig` creates them when missing: automatic block allocation,
/// no strict affinity (`strict_affinity` and `maxBlocksPerHost` are omitted when empty).
fn ipam_config() -> Object {
    Object {
        kind: Kind::IpamConfig,
        name: "config",
        key: IPAM_CONFIG_KEY.to_owned(),
        value: r#"{"auto_allocate_blocks":true}"#.to_owned(),
    }
}

fn object<S: Serialize>(kind: Kind, metadata: Metadata, spec: S) -> Object {
    let name = metadata.name;
    let resource = Resource {
        kind: kind.as_str(),
        api_version: API_VERSION,
        metadata,
        spec,
    };
    Object {
        kind,
        name,
        key: key(kind, name),
        // Plain structs of strings, numbers and booleans: serializing cannot fail.
        value: serde_json::to_string(&resource).unwrap_or_default(),
    }
}

/// A v3 resource: `metav1.TypeMeta` inline, then `ObjectMeta`, then the spec.
#[derive(Serialize)]
struct Resource<S> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Metadata,
    spec: S,
}

/// The `ObjectMeta` fields a Create sets, in `ObjectMeta`'s order.
#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    uid: String,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: String,
}

/// `metav1.Time` in JSON: RFC 3339, whole seconds, UTC.
pub fn timestamp(now: OffsetDateTime) -> String {
    calseg_api::when::rfc3339(&now)
}

/// Random bytes made a version 4, RFC 4122 variant UUID (as `google/uuid`'s `New`).
fn v4_bytes(mut bytes: [u8; 16]) -> [u8; 16] {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// A v4 UUID in its text form, as `metadata.uid`.
fn uuid_v4(bytes: [u8; 16]) -> String {
    let h = hex::encode(v4_bytes(bytes));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
