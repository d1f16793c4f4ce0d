//! Calico's published etcdv3 key-prefix tables, one row set per table era, as data.
//!
//! Source: the "calico-etcdv3-paths" reference page, as collected in
//! /work/shared/reference/calico-etcd-rbac.md §1a (latest: docs.tigera.io/calico/latest/reference/
//! etcd-rbac/calico-etcdv3-paths) and its change log §1b (projectcalico/calico history):
//! - 3.0: `PC v3.0/reference/advanced/etcd-rbac/calico-etcdv3-paths.md`, coarse `R3/*` RW.
//! - 3.1: commit a49d4c84bc / PR #1670: Felix `R3/*` read only; policy editor + globalnetworksets.
//! - 3.9: PR #2772 "More restrictive etcdv3 paths": per-resource RW lists plus `R3/*` read;
//!   policy editor + networksets.
//! - 3.11: commit b17cb98611: `/calico/felix/v2/*` RW for calico/node and Felix.
//! - 3.16: PR #3685: kube-controllers RW on hostendpoints and kubecontrollersconfigurations.
//! - 3.19: PR #4483: CNI plugin read on nodes (IPAM reads the Node object).
//!
//! The 3.1–3.16 rows are the documented tables of their neighbours plus or minus the changes
//! above; the calicoctl tables did not change after 3.0 except for the policy editor.

use calico_rows::*;
use serde::Serialize;

use super::CalicoVersion;
use super::model::{GrantTable, KeyRange, Permission};

/// The release from which a set of tables applies; a policy uses the newest era not newer than
/// its `calico_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum TableEra {
    V3_0,
    V3_1,
    V3_9,
    V3_11,
    V3_16,
    V3_19,
}

impl TableEra {
    /// The first Calico release of this era.
    pub fn since(self) -> CalicoVersion {
        ERAS.iter()
            .find(|tables| tables.era == self)
            .map_or(CalicoVersion::new(3, 0), |tables| tables.since)
    }
}

impl CalicoVersion {
    /// Which built-in tables this version uses: the newest era not newer than it.
    pub fn table_era(self) -> TableEra {
        ERAS.iter()
            .rev()
            .find(|tables| tables.since <= self)
            .map_or(TableEra::V3_0, |tables| tables.era)
    }
}

/// The grants of Calico's published `table` for `version`: prefixes only, sorted and
/// deduplicated. For a narrowed profile, the published table it narrows (its own grants come
/// from `profiles::builtin_profile`).
pub fn builtin_grants(version: CalicoVersion, table: GrantTable) -> Vec<Permission> {
    let era = version.table_era();
    let Some(tables) = ERAS.iter().find(|tables| tables.era == era) else {
        return Vec::new();
    };
    let rows = match table {
        GrantTable::CalicoNode | GrantTable::CalicoNodePerNode => tables.node,
        GrantTable::Felix | GrantTable::FelixPerNode => tables.felix,
        GrantTable::CniPlugin | GrantTable::CniPluginPerNode => tables.cni,
        GrantTable::KubeControllers => tables.kube_controllers,
        GrantTable::CalicoctlReadOnly => CALICOCTL_READ_ONLY,
        GrantTable::CalicoctlPolicyEditor => tables.policy_editor,
        GrantTable::CalicoctlFull => CALICOCTL_FULL,
    };
    let mut grants: Vec<Permission> = rows
        .iter()
        .map(|&(key, access)| Permission {
            key: key.to_string(),
            range: KeyRange::Prefix,
            access,
        })
        .collect();
    grants.sort();
    grants.dedup();
    grants
}

struct EraTables {
    era: TableEra,
    since: CalicoVersion,
    node: &'static [Row],
    felix: &'static [Row],
    cni: &'static [Row],
    kube_controllers: &'static [Row],
    policy_editor: &'static [Row],
}

#[rustfmt::skip]
const ERAS: [EraTables; 6] = [
    EraTables { era: TableEra::V3_0, since: CalicoVersion::new(3, 0), node: NODE_3_0, felix: FELIX_3_0, cni: CNI_3_0, kube_controllers: KUBE_CONTROLLERS_3_0, policy_editor: POLICY_EDITOR_3_0 },
    EraTables { era: TableEra::V3_1, since: CalicoVersion::new(3, 1), node: NODE_3_0, felix: FELIX_3_1, cni: CNI_3_0, kube_controllers: KUBE_CONTROLLERS_3_0, policy_editor: POLICY_EDITOR_3_1 },
    EraTables { era: TableEra::V3_9, since: CalicoVersion::new(3, 9), node: NODE_3_9, felix: FELIX_3_1, cni: CNI_3_9, kube_controllers: KUBE_CONTROLLERS_3_9, policy_editor: POLICY_EDITOR_3_9 },
    EraTables { era: TableEra::V3_11, since: CalicoVersion::new(3, 11), node: NODE_3_11, felix: FELIX_3_11, cni: CNI_3_9, kube_controllers: KUBE_CONTROLLERS_3_9, policy_editor: POLICY_EDITOR_3_9 },
    EraTables { era: TableEra::V3_16, since: CalicoVersion::new(3, 16), node: NODE_3_11, felix: FELIX_3_11, cni: CNI_3_9, kube_controllers: KUBE_CONTROLLERS_3_16, policy_editor: POLICY_EDITOR_3_9 },
    EraTables { era: TableEra::V3_19, since: CalicoVersion::new(3, 19), node: NODE_3_11, felix: FELIX_3_11, cni: CNI_3_19, kube_controllers: KUBE_CONTROLLERS_3_16, policy_editor: POLICY_EDITOR_3_9 },
];

/// The rows themselves: `(prefix, access)`, every prefix ending in '/'.
#[rustfmt::skip]
mod calico_rows {
    use calseg_api::access::Access::{self, Read as R, ReadWrite as RW};

    pub type Row = (&'static str, Access);

    /// `R3` in the reference: where every Calico v3 resource lives.
    macro_rules! r3 {
        ($kind:literal) => { concat!("/calico/resources/v3/projectcalico.org/", $kind) };
    }

    pub const NODE_3_0: &[Row] = &[("/calico/felix/v1/", RW), ("/calico/ipam/v2/", RW), (r3!(""), RW)];
    pub const NODE_3_9: &[Row] = &[
        ("/calico/felix/v1/", RW), ("/calico/ipam/v2/", RW),
        (r3!("felixconfigurations/"), RW), (r3!("nodes/"), RW), (r3!("workloadendpoints/"), RW),
        (r3!("clusterinformations/"), RW), (r3!("ippools/"), RW), (r3!(""), R),
    ];
    pub const NODE_3_11: &[Row] = &[
        ("/calico/felix/v1/", RW), ("/calico/felix/v2/", RW), ("/calico/ipam/v2/", RW),
        (r3!("felixconfigurations/"), RW), (r3!("nodes/"), RW), (r3!("workloadendpoints/"), RW),
        (r3!("clusterinformations/"), RW), (r3!("ippools/"), RW), (r3!(""), R),
    ];

    pub const FELIX_3_0: &[Row] = &[("/calico/felix/v1/", RW), (r3!(""), RW)];
    pub const FELIX_3_1: &[Row] = &[("/calico/felix/v1/", RW), (r3!(""), R)];
    pub const FELIX_3_11: &[Row] = &[("/calico/felix/v1/", RW), ("/calico/felix/v2/", RW), (r3!(""), R)];

    pub const CNI_3_0: &[Row] = &[("/calico/ipam/v2/", RW), (r3!(""), RW)];
    pub const CNI_3_9: &[Row] = &[
        ("/calico/ipam/v2/", RW), (r3!("workloadendpoints/"), RW),
        (r3!("ippools/"), R), (r3!("clusterinformations/"), R),
    ];
    pub const CNI_3_19: &[Row] = &[
        ("/calico/ipam/v2/", RW), (r3!("workloadendpoints/"), RW),
        (r3!("ippools/"), R), (r3!("clusterinformations/"), R), (r3!("nodes/"), R),
    ];

    pub const KUBE_CONTROLLERS_3_0: &[Row] = &[("/calico/ipam/v2/", RW), (r3!(""), RW)];
    pub const KUBE_CONTROLLERS_3_9: &[Row] = &[
        ("/calico/ipam/v2/", RW), (r3!("profiles/"), RW), (r3!("networkpolicies/"), RW),
        (r3!("nodes/"), RW), (r3!("clusterinformations/"), RW), (r3!(""), R),
    ];
    pub const KUBE_CONTROLLERS_3_16: &[Row] = &[
        ("/calico/ipam/v2/", RW), (r3!("profiles/"), RW), (r3!("networkpolicies/"), RW),
        (r3!("nodes/"), RW), (r3!("clusterinformations/"), RW), (r3!("hostendpoints/"), RW),
        (r3!("kubecontrollersconfigurations/"), RW), (r3!(""), R),
    ];

    pub const CALICOCTL_READ_ONLY: &[Row] = &[("/calico/ipam/v2/", R), (r3!(""), R)];
    pub const POLICY_EDITOR_3_0: &[Row] = &[
        ("/calico/ipam/v2/", R), (r3!(""), R),
        (r3!("globalnetworkpolicies/"), RW), (r3!("networkpolicies/"), RW), (r3!("profiles/"), RW),
    ];
    pub const POLICY_EDITOR_3_1: &[Row] = &[
        ("/calico/ipam/v2/", R), (r3!(""), R),
        (r3!("globalnetworkpolicies/"), RW), (r3!("globalnetworksets/"), RW),
        (r3!("networkpolicies/"), RW), (r3!("profiles/"), RW),
    ];
    pub const POLICY_EDITOR_3_9: &[Row] = &[
        ("/calico/ipam/v2/", R), (r3!(""), R),
        (r3!("globalnetworkpolicies/"), RW), (r3!("globalnetworksets/"), RW),
        (r3!("networkpolicies/"), RW), (r3!("networksets/"), RW), (r3!("profiles/"), RW),
    ];
    pub const CALICOCTL_FULL: &[Row] = &[("/calico/ipam/v2/", RW), (r3!(""), RW)];
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use calseg_api::access::Access;

    const R3: &str = "/calico/resources/v3/projectcalico.org/";

    fn has(version: (u32, u32), table: GrantTable, key: &str, access: Access) -> bool {
        builtin_grants(CalicoVersion::new(version.0, version.1), table)
            .iter()
            .any(|p| p.key == key && p.access == access && p.range == KeyRange::Prefix)
    }

    #[test]
    fn versions_map_to_the_newest_era_not_newer() {
        let era = |major, minor| CalicoVersion::new(major, minor).table_era();
        assert_eq!(era(3, 0), TableEra::V3_0);
        assert_eq!(era(3, 8), TableEra::V3_1);
        assert_eq!(era(3, 10), TableEra::V3_9);
        assert_eq!(era(3, 15), TableEra::V3_11);
        assert_eq!(era(3, 18), TableEra::V3_16);
        assert_eq!(era(3, 29), TableEra::V3_19);
        assert_eq!(era(4, 0), TableEra::V3_19);
        assert_eq!(TableEra::V3_16.since(), CalicoVersion::new(3, 16));
    }

    #[test]
    fn cni_reads_nodes_from_3_19() {
        let nodes = format!("{R3}nodes/");
        assert!(!has((3, 18), GrantTable::CniPlugin, &nodes, Access::Read));
        assert!(has((3, 19), GrantTable::CniPlugin, &nodes, Access::Read));
    }

    #[test]
    fn felix_v2_arrives_in_3_11_for_node_and_felix() {
        for table in [GrantTable::CalicoNode, GrantTable::Felix] {
            assert!(!has((3, 10), table, "/calico/felix/v2/", Access::ReadWrite));
            assert!(has((3, 11), table, "/calico/felix/v2/", Access::ReadWrite));
        }
    }

    #[test]
    fn era_changes_follow_the_change_log() {
        // 3.1: standalone Felix loses write on R3, policy editor gains globalnetworksets.
        assert!(has((3, 0), GrantTable::Felix, R3, Access::ReadWrite));
        assert!(has((3, 1), GrantTable::Felix, R3, Access::Read));
        let gns = format!("{R3}globalnetworksets/");
        assert!(!has(
            (3, 0),
            GrantTable::CalicoctlPolicyEditor,
            &gns,
            Access::ReadWrite
        ));
        assert!(has(
            (3, 1),
            GrantTable::CalicoctlPolicyEditor,
            &gns,
            Access::ReadWrite
        ));
        // 3.9: per-resource lists; R3 becomes read for node.
        assert!(has((3, 8), GrantTable::CalicoNode, R3, Access::ReadWrite));
        assert!(has((3, 9), GrantTable::CalicoNode, R3, Access::Read));
        // 3.16: kube-controllers hostendpoints.
        let heps = format!("{R3}hostendpoints/");
        assert!(!has(
            (3, 15),
            GrantTable::KubeControllers,
            &heps,
            Access::ReadWrite
        ));
        assert!(has(
            (3, 16),
            GrantTable::KubeControllers,
            &heps,
            Access::ReadWrite
        ));
    }

    #[test]
    fn every_table_prefix_is_absolute_and_ends_in_a_slash() {
        for tables in &ERAS {
            for table in GrantTable::ALL {
                let grants = builtin_grants(tables.since, table);
                assert!(!grants.is_empty());
                for p in grants {
                    assert!(
                        p.key.starts_with("/calico/") && p.key.ends_with('/'),
                        "{p:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn table_names_round_trip() {
        for table in GrantTable::ALL {
            assert_eq!(GrantTable::parse(table.name()), Some(table));
            let json = serde_json::to_string(&table).unwrap();
            assert_eq!(json, format!("\"{}\"", table.name()));
        }
    }
}
