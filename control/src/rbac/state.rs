//! Auth states (desired or live) and the desired state a policy implies.

use super::OWNED_ROLE_PREFIX;
use crate::policy::{Permission, Policy};
use calseg_api::access::Access;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One etcd permission exactly as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdGrant {
    pub key: Vec<u8>,
    /// Empty for a single key; otherwise the exclusive end of the range.
    pub range_end: Vec<u8>,
    pub access: Access,
}

impl EtcdGrant {
    /// The range this grant covers, without the access: etcd keys permissions by it.
    pub fn range(&self) -> (&[u8], &[u8]) {
        (&self.key, &self.range_end)
    }

    /// True when the range is `[key, prefix_end(key))`.
    pub fn is_prefix(&self) -> bool {
        !self.range_end.is_empty()
            && crate::policy::prefix_end(&self.key).as_deref() == Some(&self.range_end[..])
    }
}

impl From<&Permission> for EtcdGrant {
    fn from(permission: &Permission) -> Self {
        Self {
            key: permission.key.as_bytes().to_vec(),
            range_end: permission.range_end().unwrap_or_default(),
            access: permission.access,
        }
    }
}

impl fmt::Display for EtcdGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = String::from_utf8_lossy(&self.key);
        if self.range_end.is_empty() {
            write!(f, "{} key {key}", self.access)
        } else if self.is_prefix() {
            write!(f, "{} prefix {key}", self.access)
        } else {
            let end = String::from_utf8_lossy(&self.range_end);
            write!(f, "{} range [{key}, {end})", self.access)
        }
    }
}

impl Serialize for EtcdGrant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("EtcdGrant", 4)?;
        s.serialize_field("key", &String::from_utf8_lossy(&self.key))?;
        s.serialize_field("range_end", &String::from_utf8_lossy(&self.range_end))?;
        s.serialize_field("prefix", &self.is_prefix())?;
        s.serialize_field("access", &self.access)?;
        s.end()
    }
}

/// Users and roles, with their permissions and bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthState {
    /// Role name → permissions.
    pub roles: BTreeMap<String, BTreeSet<EtcdGrant>>,
    /// User name → roles it holds.
    pub users: BTreeMap<String, BTreeSet<String>>,
}

/// Nodes with their enrollment generation (0 for a node never revoked or not enrolled).
pub type NodeGenerations = BTreeMap<String, u32>;

/// Every node at generation 0: the policy's named nodes when no store is at hand.
pub fn first_generation(nodes: BTreeSet<String>) -> NodeGenerations {
    nodes.into_iter().map(|node| (node, 0)).collect()
}

/// What etcd must hold for `policy` on `nodes`: for each node and each of its components a user
/// [`Policy::etcd_user`] (the template, and the node's generation when above 0) holding the
/// component's shared role (when it grants anything) and its per-node role
/// (when it has per-node grants; its name has no generation, so it stays across
/// re-enrollments); and for each component that declares a component-wide identity, the user
/// [`Policy::component_user`] holding the component's shared role only.
pub fn desired_state(policy: &Policy, nodes: &NodeGenerations) -> AuthState {
    let mut state = AuthState::default();
    for (node, &generation) in nodes {
        for component in policy.components_for(node) {
            let mut roles = BTreeSet::new();
            if !component.grants.is_empty() {
                let shared = Policy::shared_role(&component.name);
                debug_assert!(shared.starts_with(OWNED_ROLE_PREFIX));
                state
                    .roles
                    .entry(shared.clone())
                    .or_insert_with(|| component.grants.iter().map(EtcdGrant::from).collect());
                roles.insert(shared);
            }
            let per_node = component.node_permissions(node);
            if !per_node.is_empty() {
                let role = Policy::node_role(&component.name, node);
                state
                    .roles
                    .insert(role.clone(), per_node.iter().map(EtcdGrant::from).collect());
                roles.insert(role);
            }
            state
                .users
                .insert(policy.etcd_user(&component.name, node, generation), roles);
        }
    }
    for component in policy.components.values() {
        // Validation allows a component-wide identity only for shared grants, never empty.
        let Some(user) = policy.component_user(&component.name) else {
            continue;
        };
        if component.grants.is_empty() || !component.node_grants.is_empty() {
            continue;
        }
        let shared = Policy::shared_role(&component.name);
        state
            .roles
            .entry(shared.clone())
            .or_insert_with(|| component.grants.iter().map(EtcdGrant::from).collect());
        state.users.insert(user, BTreeSet::from([shared]));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = [ { prefix = "/calico/resources/v3/projectcalico.org/", access = "read" } ]
extra_grants = [ { prefix = "/calico/resources/v3/projectcalico.org/tiers/", access = "readwrite" } ]
node_grants = [ { prefix = "/calico/felix/v1/host/{node}/", access = "readwrite" } ]
[components.calicoctl-ro]
grants = "calicoctl-read-only"
[[hosts]]
names = ["node1", "node2"]
components = ["calico-node"]
[[hosts]]
name = "node1"
components = ["calicoctl-ro"]
"#;

    #[test]
    fn each_node_component_pair_gets_a_user_with_shared_and_node_roles_only() {
        let policy = crate::policy::parse(POLICY, "policy.toml").unwrap();
        let mut nodes = first_generation(policy.nodes());
        let state = desired_state(&policy, &nodes);
        assert_eq!(
            state.users.keys().collect::<Vec<_>>(),
            [
                "calico-node.node1",
                "calico-node.node2",
                "calicoctl-ro.node1"
            ]
        );
        assert_eq!(
            state.users["calico-node.node2"],
            BTreeSet::from([
                "calseg.calico-node".to_owned(),
                "calseg.calico-node.node2".to_owned()
            ])
        );
        let node2 = &state.roles["calseg.calico-node.node2"];
        assert_eq!(node2.len(), 1);
        let grant = node2.iter().next().unwrap();
        assert_eq!(grant.key, b"/calico/felix/v1/host/node2/");
        assert_eq!(grant.range_end, b"/calico/felix/v1/host/node20");
        assert!(grant.is_prefix());
        assert!(
            state.roles["calseg.calicoctl-ro"]
                .iter()
                .all(|g| g.access == Access::Read)
        );
        // No marker role: two rebuilding changes per identity without per-node grants.
        assert!(!state.roles.contains_key(crate::rbac::LEGACY_MARKER_ROLE));
        assert_eq!(
            state.users["calicoctl-ro.node1"],
            BTreeSet::from(["calseg.calicoctl-ro".to_owned()])
        );

        // node2 came back after a revocation: a new user name, the same per-node role.
        nodes.insert("node2".into(), 1);
        let again = desired_state(&policy, &nodes);
        assert!(!again.users.contains_key("calico-node.node2"));
        assert_eq!(
            again.users["calico-node.node2~g1"],
            state.users["calico-node.node2"]
        );
        assert_eq!(again.roles, state.roles);
    }

    #[test]
    fn a_component_wide_identity_holds_the_shared_role_only() {
        let text = POLICY.replace(
            "[components.calicoctl-ro]",
            "[components.kc]\ngrants = \"kube-controllers\"\ncomponent_identity = true\n[components.calicoctl-ro]",
        );
        let policy = crate::policy::parse(&text, "policy.toml").unwrap();
        let state = desired_state(&policy, &first_generation(policy.nodes()));
        assert_eq!(
            state.users["kc~all"],
            BTreeSet::from(["calseg.kc".to_owned()])
        );
        assert!(!state.roles["calseg.kc"].is_empty());
        // Even with no node at all: the identity belongs to no node.
        let alone = desired_state(&policy, &NodeGenerations::new());
        assert_eq!(alone.users.keys().collect::<Vec<_>>(), ["kc~all"]);
        // It is calseg's as every other user: it holds a calseg role.
        assert!(crate::rbac::is_calseg_user(&alone.users["kc~all"]));
    }

    #[test]
    fn a_node_joining_a_fleet_costs_two_changes_per_identity_plus_its_per_node_keys() {
        use crate::rbac::{Change, LiveAuth, diff};
        let policy = crate::policy::parse(POLICY, "policy.toml").unwrap();
        let fleet = first_generation(BTreeSet::from(["node1".to_owned()]));
        let live = LiveAuth {
            owned: desired_state(&policy, &fleet),
            ..LiveAuth::default()
        };
        // node2 joins with calico-node: one per-node key, shared grants already in etcd.
        let joined = first_generation(policy.nodes());
        let plan = diff(&desired_state(&policy, &joined), &live, false);
        let rebuilding: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| !matches!(c, Change::CreateRole { .. }))
            .collect();
        // User add, shared binding, per-node binding, one per-node permission: 3 + k, k = 1.
        assert_eq!(rebuilding.len(), 4, "{:#?}", plan.changes);
        assert_eq!(plan.changes.len(), 5, "{:#?}", plan.changes);
    }
}
