//! Built-in narrowed profiles: for calico-node, stand-alone Felix and the CNI plugin, the grants
//! that keep each node to its own keys (per-node role) plus what Calico's design forces every
//! node to share (shared role). Source: the node-scoped key table of the reference
//! (calico-etcd-rbac.md §4, from libcalico-go's model keys, node startup and felix), and
//! libcalico-go's `EnsureInitialized` (clientv3/client.go) for what runs at every start.
//!
//! What stays shared, and why (the README lists the same rows):
//! - `/calico/ipam/v2/assignment/` read-write: IPAM blocks; any node may claim a free block or
//!   borrow addresses from another node's block.
//! - `/calico/ipam/v2/handle/` read-write: IPAM handles are keyed by workload or tunnel, not by
//!   node.
//! - `R3/workloadendpoints/` read-write (CNI plugin only): keys start with the namespace, so no
//!   per-node prefix exists.
//! - write on the exact keys of the tiers the release creates (calico-node): Calico creates its
//!   tiers at every start with a transaction, and etcd checks write on it even when the tier
//!   exists. 3.29: `default`, `adminnetworkpolicy`; 3.30 and 3.31: also
//!   `baselineadminnetworkpolicy`; 3.32 and later: `default`, `kube-admin`, `kube-baseline`
//!   (libcalico-go clientv3/client.go at those release tags).
//! - read on `R3/`: Felix and confd list and watch whole prefixes (and read on IPAM's settings
//!   key `/calico/ipam/v2/config`).
//!
//! Cluster-wide singletons (clusterinformations/default, felixconfigurations/default, the
//! default IP pool, bgpconfigurations/default, ipamconfigurations/default) get no grant here:
//! `calseg-server datastore init` creates them once, and Calico only writes them when missing.

use calico_rows::*;

use super::location::Problem;
use super::model::GrantTable;
use super::model::{Permission, PermissionTemplate};
use super::tables::builtin_grants;
use super::version::CalicoVersion;

/// The grants a built-in table or profile gives: shared by every node, and per node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub shared: Vec<Permission>,
    pub per_node: Vec<PermissionTemplate>,
}

/// The Calico releases whose node-scoped keys the narrowed profiles were written from.
const NEWEST_KNOWN: CalicoVersion = CalicoVersion::new(3, 33);

/// The grants of `table` for `version`. Calico's published tables have no per-node part; a
/// narrowed profile is refused for a release whose keys calseg does not know.
pub(super) fn builtin_profile(
    version: CalicoVersion,
    table: GrantTable,
) -> Result<Profile, Problem> {
    let Some(rows) = narrowed_rows(table) else {
        return Ok(Profile {
            shared: builtin_grants(version, table),
            per_node: Vec::new(),
        });
    };
    if version < rows.since || version > NEWEST_KNOWN {
        let published = table.published().name();
        let others: Vec<&str> = GrantTable::ALL
            .iter()
            .filter(|t| {
                narrowed_rows(**t).is_none_or(|r| r.since <= version && version <= NEWEST_KNOWN)
            })
            .map(|t| t.name())
            .collect();
        return Err(Problem::new(
            format!(
                "grants = {:?}: calseg knows the per-node keys of Calico {} to {NEWEST_KNOWN}, not of calico_version {version}",
                table.name(),
                rows.since
            ),
            format!(
                "use Calico's published table {published:?} (with node_grants of your own), or one of the tables that exist for {version}: {}",
                others.join(", ")
            ),
        ));
    }
    let mut shared: Vec<Permission> = rows
        .shared
        .iter()
        .filter(|row| row.since <= version && row.until.is_none_or(|until| version <= until))
        .map(|row| Permission {
            key: row.key.to_string(),
            range: row.range,
            access: row.access,
        })
        .collect();
    shared.sort();
    shared.dedup();
    let mut per_node: Vec<PermissionTemplate> = rows
        .per_node
        .iter()
        .map(|row| PermissionTemplate {
            key_template: row.key.to_string(),
            range: row.range,
            access: row.access,
        })
        .collect();
    per_node.sort();
    per_node.dedup();
    Ok(Profile { shared, per_node })
}

/// A narrowed profile's rows, or `None` for one of Calico's published tables.
fn narrowed_rows(table: GrantTable) -> Option<&'static ProfileRows> {
    match table {
        GrantTable::CalicoNodePerNode => Some(&CALICO_NODE),
        GrantTable::FelixPerNode => Some(&FELIX),
        GrantTable::CniPluginPerNode => Some(&CNI_PLUGIN),
        _ => None,
    }
}

struct ProfileRows {
    /// The oldest release the node-scoped keys hold for.
    since: CalicoVersion,
    shared: &'static [Row],
    per_node: &'static [Row],
}

const CALICO_NODE: ProfileRows = ProfileRows {
    since: CalicoVersion::new(3, 19),
    shared: NODE_SHARED,
    per_node: NODE_PER_NODE,
};
const FELIX: ProfileRows = ProfileRows {
    since: CalicoVersion::new(3, 11),
    shared: FELIX_SHARED,
    per_node: FELIX_PER_NODE,
};
const CNI_PLUGIN: ProfileRows = ProfileRows {
    since: CalicoVersion::new(3, 19),
    shared: CNI_SHARED,
    per_node: CNI_PER_NODE,
};

/// The rows: key (with `{node}` in per-node rows), range, access, and the release from which a
/// shared row applies.
#[rustfmt::skip]
mod calico_rows {
    use super::super::model::KeyRange::{self, Exact as K, Prefix as P};
    use super::super::version::CalicoVersion;
    use calseg_api::access::Access::{self, Read as R, ReadWrite as RW, Write as W};

    pub struct Row {
        pub key: &'static str,
        pub range: KeyRange,
        pub access: Access,
        /// The first release a shared row applies to, and the last (`None`: every later one).
        pub since: CalicoVersion,
        pub until: Option<CalicoVersion>,
    }

    const fn row(key: &'static str, range: KeyRange, access: Access) -> Row {
        Row { key, range, access, since: CalicoVersion::new(3, 0), until: None }
    }

    /// A row for Calico 3.`first` to 3.`last` (`last` = 0: every later release).
    const fn releases(first: u32, last: u32, key: &'static str, range: KeyRange, access: Access) -> Row {
        let until = if last == 0 { None } else { Some(CalicoVersion::new(3, last)) };
        Row { key, range, access, since: CalicoVersion::new(3, first), until }
    }

    macro_rules! r3 {
        ($kind:literal) => { concat!("/calico/resources/v3/projectcalico.org/", $kind) };
    }

    pub const NODE_SHARED: &[Row] = &[
        row(r3!(""), P, R),
        // IPAM's settings, read at every block claim (created by `datastore init`).
        row("/calico/ipam/v2/config", K, R),
        row("/calico/ipam/v2/assignment/", P, RW),
        row("/calico/ipam/v2/handle/", P, RW),
        releases(29, 0, r3!("tiers/default"), K, W),
        releases(29, 31, r3!("tiers/adminnetworkpolicy"), K, W),
        releases(30, 31, r3!("tiers/baselineadminnetworkpolicy"), K, W),
        releases(32, 0, r3!("tiers/kube-admin"), K, W),
        releases(32, 0, r3!("tiers/kube-baseline"), K, W),
    ];
    pub const NODE_PER_NODE: &[Row] = &[
        row(r3!("nodes/{node}"), K, RW),
        row(r3!("felixconfigurations/node.{node}"), K, RW),
        row("/calico/felix/v1/host/{node}/", P, RW),
        row("/calico/felix/v2/no-region/host/{node}/", P, RW),
        row("/calico/ipam/v2/host/{node}/", P, RW),
    ];

    pub const FELIX_SHARED: &[Row] = &[
        row(r3!(""), P, R),
        // Felix with Calico IPAM watches the blocks; Calico's published Felix table lacks it.
        row("/calico/ipam/v2/assignment/", P, R),
    ];
    pub const FELIX_PER_NODE: &[Row] = &[
        row("/calico/felix/v1/host/{node}/", P, RW),
        row("/calico/felix/v2/no-region/host/{node}/", P, RW),
    ];

    pub const CNI_SHARED: &[Row] = &[
        row("/calico/ipam/v2/config", K, R),
        row("/calico/ipam/v2/assignment/", P, RW),
        row("/calico/ipam/v2/handle/", P, RW),
        row(r3!("workloadendpoints/"), P, RW),
        row(r3!("ippools/"), P, R),
        row(r3!("clusterinformations/"), P, R),
        row(r3!("nodes/"), P, R),
    ];
    pub const CNI_PER_NODE: &[Row] = &[row("/calico/ipam/v2/host/{node}/", P, RW)];
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::model::KeyRange;
    use super::*;
    use calseg_api::access::Access;

    const R3: &str = "/calico/resources/v3/projectcalico.org/";

    #[test]
    fn calico_node_per_node_writes_only_its_own_keys_and_the_shared_ipam_rows() {
        let profile =
            builtin_profile(CalicoVersion::new(3, 29), GrantTable::CalicoNodePerNode).unwrap();
        let shared_writes: Vec<&str> = profile
            .shared
            .iter()
            .filter(|p| p.access != Access::Read)
            .map(|p| p.key.as_str())
            .collect();
        assert_eq!(
            shared_writes,
            [
                "/calico/ipam/v2/assignment/",
                "/calico/ipam/v2/handle/",
                "/calico/resources/v3/projectcalico.org/tiers/adminnetworkpolicy",
                "/calico/resources/v3/projectcalico.org/tiers/default",
            ]
        );
        for p in profile.shared.iter().filter(|p| p.key.contains("tiers/")) {
            assert_eq!(p.range, KeyRange::Exact, "{p:?}");
        }
        for t in &profile.per_node {
            assert!(t.key_template.contains("{node}"), "{t:?}");
            assert!(
                t.range == KeyRange::Exact || t.key_template.ends_with("{node}/"),
                "{t:?}"
            );
        }
        let own = profile
            .per_node
            .iter()
            .map(|t| t.expand("n1").key)
            .collect::<Vec<_>>();
        assert!(own.contains(&format!("{R3}nodes/n1")));
        assert!(own.contains(&"/calico/ipam/v2/host/n1/".to_string()));
    }

    #[test]
    fn tiers_are_granted_from_3_29_only() {
        let profile =
            builtin_profile(CalicoVersion::new(3, 28), GrantTable::CalicoNodePerNode).unwrap();
        assert!(!profile.shared.iter().any(|p| p.key.contains("tiers/")));
    }

    #[test]
    fn a_release_whose_keys_are_unknown_is_refused_naming_the_version_and_the_tables() {
        for version in [
            CalicoVersion::new(3, 9),
            CalicoVersion::new(3, 40),
            CalicoVersion::new(4, 0),
        ] {
            let problem = builtin_profile(version, GrantTable::CalicoNodePerNode).unwrap_err();
            assert!(
                problem.message.contains(&version.to_string()),
                "{problem:?}"
            );
            assert!(problem.message.contains("3.19 to 3.33"), "{problem:?}");
            assert!(problem.hint.contains("\"calico-node\""), "{problem:?}");
            assert!(problem.hint.contains("calicoctl-read-only"), "{problem:?}");
        }
        // Felix's per-node keys exist from 3.11 (felix v2 status).
        assert!(builtin_profile(CalicoVersion::new(3, 11), GrantTable::FelixPerNode).is_ok());
    }

    #[test]
    fn published_tables_are_unchanged_and_have_no_per_node_part() {
        let v = CalicoVersion::new(3, 29);
        let profile = builtin_profile(v, GrantTable::CalicoNode).unwrap();
        assert_eq!(profile.shared, builtin_grants(v, GrantTable::CalicoNode));
        assert!(profile.per_node.is_empty());
    }
}
