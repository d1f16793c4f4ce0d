//! The validated policy: what the RBAC reconciler, the identity service and the manifests read.
//! Every value here has passed validation, so consumers need not re-check it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use calseg_api::access::Access;
use serde::Serialize;

use super::location::Diagnostic;
use super::version::CalicoVersion;

/// A validated segmentation policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The Calico release; `calico_version.table_era()` says which built-in tables apply.
    pub calico_version: CalicoVersion,
    pub etcd: EtcdSettings,
    pub identity: IdentitySettings,
    /// Components by name (`[a-z0-9][a-z0-9-]*`, so role and user names stay unambiguous).
    pub components: BTreeMap<String, Component>,
    pub hosts: Vec<HostRule>,
    pub rollout: RolloutSettings,
    /// `[datastore]`: the values `datastore init` gives Calico's cluster-wide objects.
    pub datastore: DatastoreSettings,
    /// Non-fatal findings (known Calico pitfalls, http endpoints, loose prefixes) to show the
    /// operator on every check and apply.
    pub warnings: Vec<Diagnostic>,
}

/// `[datastore]`: the values `calseg-server datastore init` gives Calico's cluster-wide
/// objects (ClusterInformation, the default FelixConfiguration, IP pool, BGPConfiguration and
/// IPAMConfiguration), which per-node identities may not create themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreSettings {
    /// The exact version calico-node reports (`v3.29.3`), for ClusterInformation's
    /// `calicoVersion`: calico-node rewrites that object whenever it differs. `None`: not
    /// written, and calico-node will try to.
    pub calico_release: Option<String>,
    /// ClusterInformation's `clusterType`: comma-separated; calico-node adds any type of its
    /// `CLUSTER_TYPE` that is missing.
    pub cluster_type: String,
    /// Whether to create `default-ipv4-ippool` when no IPv4 pool exists.
    pub default_pool: bool,
    /// The default pool's CIDR: IPv4, network address only (`192.168.0.0/16`).
    pub ipv4_pool_cidr: String,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
    /// IPAM block prefix length, 20..=32, never shorter than the pool's.
    pub block_size: u8,
    /// BGPConfiguration `default`'s `asNumber`.
    pub as_number: u32,
    /// BGPConfiguration `default`'s `nodeToNodeMeshEnabled`.
    pub node_to_node_mesh: bool,
    /// `logSeverityScreen` of FelixConfiguration and BGPConfiguration `default`.
    pub log_severity: String,
}

/// An IP pool's `ipipMode` or `vxlanMode`, spelled as libcalico-go stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapMode {
    Always,
    CrossSubnet,
    Never,
}

impl EncapMode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::CrossSubnet => "CrossSubnet",
            Self::Never => "Never",
        }
    }
}

/// How components reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `http://` or `https://` URLs, scheme and authority only.
    pub endpoints: Vec<String>,
    /// CA that components use to verify etcd's server certificate, when it is not the etcd
    /// client CA calseg signs with.
    pub ca_file: Option<PathBuf>,
}

/// How component identities are named and how long their certificates live.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentitySettings {
    /// etcd user name (= certificate CN) with `{component}` and `{node}` (both always there, no
    /// `~`, and rendering no reserved user): see `names`.
    pub user_template: String,
    pub lifetime: Duration,
    /// Fraction of the lifetime after which an agent renews, in (0, 1).
    pub renew_after: f64,
}

/// `[rollout]`: how many units may restart at once, fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSettings {
    /// Live restart leases allowed fleet-wide; a percentage is of the approved nodes.
    pub max_unavailable: Budget,
    /// How long a lease lives unless renewed, so a dead agent's slot comes back.
    pub lease_ttl: Duration,
    /// The longest a lease may live from its grant, renewals included, so no node holds a slot
    /// of the budget for good.
    pub max_lease_life: Duration,
    /// Waves and health gates for the next policy change; `None`: every node at once.
    pub waves: Option<WaveSettings>,
}

/// `[rollout] canary`: who goes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    /// This many nodes, picked like the later waves (stable hash order).
    Count(u32),
    /// These nodes (those of them that are approved).
    Nodes(Vec<String>),
}

/// `[rollout] canary`, `wave`, `bake`, `max_failures`: present when `canary` or `wave` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveSettings {
    pub canary: Option<Canary>,
    /// Nodes per later wave; a percentage is of all the nodes rolled out to. `None`: one wave
    /// with everyone after the canary.
    pub wave: Option<Budget>,
    /// How long a wave must stay healthy before the next one opens.
    pub bake: Duration,
    /// This many failed nodes among the opened waves pause the rollout (at least 1).
    pub max_failures: u32,
}

/// What one component may touch in etcd and where its files go on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    /// The built-in table the shared grants started from, if any (an explicit array replaces it).
    pub table: Option<GrantTable>,
    /// Grants shared by every node: role `calseg.{component}`. Sorted, deduplicated.
    pub grants: Vec<Permission>,
    /// Grants containing `{node}`: role `calseg.{component}.{node}`.
    pub node_grants: Vec<PermissionTemplate>,
    /// systemd units to restart after new credentials land, in order.
    pub restart: Vec<String>,
    pub env_file: Option<PathBuf>,
    pub cni_conflist: Option<PathBuf>,
    pub calicoctl_cfg: Option<PathBuf>,
    /// Holds ca.pem, cert.pem and key.pem; defaults to /etc/calico/certs/{component}.
    pub cert_dir: PathBuf,
    pub owner: String,
    pub group: String,
    /// Mode of key.pem, created with it (never chmod-ed afterwards).
    pub key_mode: u32,
    pub cert_mode: u32,
    /// `component_identity = true`: the component also has one etcd user for all its pods or
    /// hosts ([`Policy::component_user`]), holding its shared role only, for Calico's
    /// "per component" set-up (one Kubernetes Secret per component). Validation refuses it for
    /// a component with per-node grants.
    pub component_identity: bool,
}

impl Component {
    /// The per-node grants with `{node}` filled in, sorted and deduplicated.
    pub fn node_permissions(&self, node: &str) -> Vec<Permission> {
        let mut permissions: Vec<Permission> =
            self.node_grants.iter().map(|t| t.expand(node)).collect();
        permissions.sort();
        permissions.dedup();
        permissions
    }
}

/// One etcd v3 RBAC permission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Permission {
    pub key: String,
    pub range: KeyRange,
    pub access: Access,
}

impl Permission {
    /// The etcd `range_end` of this permission: `None` for a single key, the prefix end for a
    /// prefix (`None` too if every byte is 0xff, which an absolute key never is).
    pub fn range_end(&self) -> Option<Vec<u8>> {
        match self.range {
            KeyRange::Exact => None,
            KeyRange::Prefix => prefix_end(self.key.as_bytes()),
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b < 0xff)?;
    let mut end = prefix.get(..=last)?.to_vec();
    if let Some(byte) = end.last_mut() {
        *byte += 1;
    }
    Some(end)
}

/// Whether a permission covers one key or a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRange {
    /// etcd range `[key, prefix_end(key))`.
    Prefix,
    /// The single key.
    Exact,
}

/// A permission whose key contains `{node}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PermissionTemplate {
    pub key_template: String,
    pub range: KeyRange,
    pub access: Access,
}

impl PermissionTemplate {
    pub fn expand(&self, node: &str) -> Permission {
        Permission {
            key: self.key_template.replace("{node}", node),
            range: self.range,
            access: self.access,
        }
    }
}

/// One `[[hosts]]` entry: which nodes run which components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub selector: HostSelector,
    /// Declared component names, sorted and deduplicated.
    pub components: Vec<String>,
    /// The rule's own restart budget among the nodes it matches (on top of the fleet's).
    pub max_unavailable: Option<Budget>,
}

/// The nodes a host rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSelector {
    /// `name = "x"` or `names = [...]`: validated node names.
    Names(Vec<String>),
    /// `match = "worker-*"`: nodes whose name matches the glob.
    Match(glob::Pattern),
}

impl HostSelector {
    pub fn matches(&self, node: &str) -> bool {
        match self {
            Self::Names(names) => names.iter().any(|name| name == node),
            Self::Match(pattern) => pattern.matches(node),
        }
    }
}

impl Policy {
    /// The concrete node names the policy names (globs name no concrete node).
    pub fn nodes(&self) -> BTreeSet<String> {
        self.hosts
            .iter()
            .filter_map(|rule| match &rule.selector {
                HostSelector::Names(names) => Some(names.iter().cloned()),
                HostSelector::Match(_) => None,
            })
            .flatten()
            .collect()
    }

    /// Components a node runs: the union over the host rules that match it, sorted by name.
    pub fn components_for(&self, node: &str) -> Vec<&Component> {
        let names: BTreeSet<&str> = self
            .hosts
            .iter()
            .filter(|rule| rule.selector.matches(node))
            .flat_map(|rule| rule.components.iter().map(String::as_str))
            .collect();
        names
            .into_iter()
            .filter_map(|name| self.components.get(name))
            .collect()
    }

    /// The restart-budget group of `node`: the index of the first rule matching it that has
    /// its own `max_unavailable`, with that budget.
    pub fn lease_group(&self, node: &str) -> Option<(usize, &HostRule, Budget)> {
        self.hosts.iter().enumerate().find_map(|(index, rule)| {
            let budget = rule.max_unavailable?;
            rule.selector.matches(node).then_some((index, rule, budget))
        })
    }

    /// The role holding a component's shared grants.
    pub fn shared_role(component: &str) -> String {
        format!("calseg.{component}")
    }

    /// The role holding a component's grants for one node.
    pub fn node_role(component: &str, node: &str) -> String {
        format!("calseg.{component}.{node}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        let exact = Permission {
            key: "/k".into(),
            range: KeyRange::Exact,
            access: Access::Read,
        };
        assert_eq!(exact.range_end(), None);
    }

    #[test]
    fn templates_expand_every_node_placeholder() {
        let t = PermissionTemplate {
            key_template: "/calico/felix/v2/no-region/host/{node}/".into(),
            range: KeyRange::Prefix,
            access: Access::ReadWrite,
        };
        assert_eq!(
            t.expand("node1").key,
            "/calico/felix/v2/no-region/host/node1/"
        );
        assert_eq!(Policy::shared_role("felix"), "calseg.felix");
        assert_eq!(Policy::node_role("felix", "n.1"), "calseg.felix.n.1");
    }
}

/// A built-in grant table, named in policy files as `grants = "<name>"`: one of Calico's
/// published tables, or a narrowed per-node profile (`*-per-node`, see `profiles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantTable {
    CalicoNode,
    Felix,
    CniPlugin,
    KubeControllers,
    CalicoctlReadOnly,
    CalicoctlPolicyEditor,
    CalicoctlFull,
    CalicoNodePerNode,
    FelixPerNode,
    CniPluginPerNode,
}

impl GrantTable {
    pub const ALL: [Self; 10] = [
        Self::CalicoNode,
        Self::Felix,
        Self::CniPlugin,
        Self::KubeControllers,
        Self::CalicoctlReadOnly,
        Self::CalicoctlPolicyEditor,
        Self::CalicoctlFull,
        Self::CalicoNodePerNode,
        Self::FelixPerNode,
        Self::CniPluginPerNode,
    ];

    /// The narrowed per-node profile of a published table, if calseg has one.
    pub fn narrowed(self) -> Option<Self> {
        match self {
            Self::CalicoNode => Some(Self::CalicoNodePerNode),
            Self::Felix => Some(Self::FelixPerNode),
            Self::CniPlugin => Some(Self::CniPluginPerNode),
            _ => None,
        }
    }

    /// The published table a narrowed profile narrows; itself for a published table.
    pub fn published(self) -> Self {
        match self {
            Self::CalicoNodePerNode => Self::CalicoNode,
            Self::FelixPerNode => Self::Felix,
            Self::CniPluginPerNode => Self::CniPlugin,
            other => other,
        }
    }

    /// The name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Self::CalicoNode => "calico-node",
            Self::Felix => "felix",
            Self::CniPlugin => "cni-plugin",
            Self::KubeControllers => "kube-controllers",
            Self::CalicoctlReadOnly => "calicoctl-read-only",
            Self::CalicoctlPolicyEditor => "calicoctl-policy-editor",
            Self::CalicoctlFull => "calicoctl-full",
            Self::CalicoNodePerNode => "calico-node-per-node",
            Self::FelixPerNode => "felix-per-node",
            Self::CniPluginPerNode => "cni-plugin-per-node",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|table| table.name() == name)
    }
}

/// How many restart leases may be live at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// At most this many (at least 1).
    Count(u32),
    /// This percentage (1..=100) of the nodes in scope, rounded down, at least 1.
    Percent(u32),
}

impl Budget {
    /// The number of leases allowed among `nodes` nodes; at least 1.
    pub fn limit(self, nodes: usize) -> u32 {
        match self {
            Self::Count(n) => n.max(1),
            Self::Percent(p) => {
                let nodes = u64::try_from(nodes).unwrap_or(u64::MAX);
                let share = nodes.saturating_mul(u64::from(p)) / 100;
                u32::try_from(share).unwrap_or(u32::MAX).max(1)
            }
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}
